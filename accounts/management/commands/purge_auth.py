"""Delete expired API keys and idle throttle counters. Safe to run at any time (e.g. hourly from cron)."""

from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone
from knox.models import AuthToken

from accounts.models import ThrottleBucket

# No throttle window is longer than a day (the longest period WALLET_SERVICE_AUTH_THROTTLE_RATE takes).
THROTTLE_IDLE = timedelta(days=1)


class Command(BaseCommand):
    help = "Delete expired API keys and throttle counters idle for more than a day."

    def handle(self, *args, **options):
        now = timezone.now()
        tokens, _ = AuthToken.objects.filter(expiry__lte=now).delete()
        buckets, _ = ThrottleBucket.objects.filter(updated_at__lt=now - THROTTLE_IDLE).delete()
        self.stdout.write(f"Deleted {tokens} expired keys and {buckets} idle throttle counters.")
