"""Per-IP throttling of signup and login, shared by every worker through the database."""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.throttling import BaseThrottle

from accounts.models import ThrottleBucket


class AuthRateThrottle(BaseThrottle):
    """At most ``WALLET_SERVICE_AUTH_THROTTLE_RATE`` signup and login attempts per client IP.

    A sliding-window log, as DRF's own throttles keep, but stored in a database row that is
    locked while it is read and updated: attempts that arrive at once through different gunicorn
    workers (or containers sharing the database) are each counted, so none slips past the limit.
    Signup and login share one scope. Attempts refused with 429 are not counted.
    """

    scope = "auth"

    def __init__(self):
        self.retry_after: float | None = None

    def allow_request(self, request, view) -> bool:
        rate = settings.WALLET_SERVICE_AUTH_THROTTLE_RATE
        if rate is None:
            return True
        ident = self.get_ident(request) or "unknown"
        key = hashlib.sha256(f"{self.scope}:{ident}".encode()).hexdigest()
        now = time.time()
        window_start = now - rate.period_seconds
        with transaction.atomic():
            bucket = self._locked_bucket(key)
            hits = sorted(hit for hit in bucket.hits if hit > window_start)
            if len(hits) >= rate.num_requests:
                self.retry_after = hits[len(hits) - rate.num_requests] + rate.period_seconds - now
                return False
            hits.append(now)
            bucket.hits = hits
            bucket.updated_at = timezone.now()
            bucket.save(update_fields=["hits", "updated_at"])
        return True

    @staticmethod
    def _locked_bucket(key: str) -> ThrottleBucket:
        """This IP's bucket, created if need be and locked, so concurrent attempts are counted one by one."""
        for _ in range(3):
            ThrottleBucket.objects.bulk_create([ThrottleBucket(key=key)], ignore_conflicts=True)
            bucket = ThrottleBucket.objects.select_for_update().filter(key=key).first()
            if bucket is not None:
                return bucket
            # purge_auth deleted an idle bucket between the insert and the lock: insert it again.
        raise RuntimeError(f"throttle bucket {key} keeps disappearing")

    def wait(self) -> float | None:
        return self.retry_after
