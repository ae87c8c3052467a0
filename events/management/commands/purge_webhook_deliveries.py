"""Delete webhook deliveries that are over (delivered, or failed for good) and older than --days (default 7).

Pending deliveries are never deleted. Safe at any time and from several workers at once; the worker
runs it hourly (wallet_service/jobs.py). The fan-out never looks back past its position, so a purged
delivery is never made again.
"""

import math
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils import timezone

from events.models import DeliveryStatus, WebhookDelivery


class Command(BaseCommand):
    help = "Delete delivered (and failed) webhook deliveries older than --days (default 7)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=float, default=7.0)

    def handle(self, *args, days: float, **options):
        if not (math.isfinite(days) and days >= 0):
            raise CommandError("--days must be a number of zero or more.")
        cutoff = timezone.now() - timedelta(days=days)
        deleted, _ = WebhookDelivery.objects.filter(
            Q(status=DeliveryStatus.DELIVERED, delivered_at__lt=cutoff)
            | Q(status=DeliveryStatus.FAILED, last_attempt_at__lt=cutoff)
            # Failed without an attempt (its endpoint was disabled first): over since it was made.
            | Q(status=DeliveryStatus.FAILED, last_attempt_at__isnull=True, created_at__lt=cutoff)
        ).delete()
        self.stdout.write(f"Deleted {deleted} webhook deliveries over for more than {days:g} days.")
