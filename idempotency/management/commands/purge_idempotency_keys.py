"""Delete idempotency keys older than the retention window (default and minimum: 24 hours).

Safe to run at any time, e.g. hourly from cron:
    0 * * * *  cd /srv/wallet && .venv/bin/python manage.py purge_idempotency_keys
"""

import math
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from idempotency.services import MIN_RETENTION, idempotency_purge

MIN_HOURS = MIN_RETENTION.total_seconds() / 3600


class Command(BaseCommand):
    help = "Delete idempotency keys older than --hours (default 24; the contract keeps them at least 24 hours)."

    def add_arguments(self, parser):
        parser.add_argument("--hours", type=float, default=MIN_HOURS)

    def handle(self, *args, hours: float, **options):
        if not (math.isfinite(hours) and hours >= MIN_HOURS):
            raise CommandError(f"--hours must be a number of at least {MIN_HOURS:g}: keys are kept 24 hours.")
        deleted = idempotency_purge(older_than=timedelta(hours=hours))
        self.stdout.write(f"Deleted {deleted} idempotency keys older than {hours:g} hours.")
