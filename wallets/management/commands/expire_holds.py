"""manage.py expire_holds: mark the pending holds past their expires_at as expired."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from wallets import services


class Command(BaseCommand):
    help = (
        "Mark pending holds past their expires_at as expired. Bookkeeping only: an expired hold stops "
        "reserving money at its expires_at whether or not this has run. The worker runs it every 30 seconds."
    )

    def handle(self, *args, **options):
        self.stdout.write(f"{services.holds_expire()} holds expired.")
