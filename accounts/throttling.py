"""Per-IP throttling of signup and login, shared by every worker through the database."""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.throttling import BaseThrottle

from accounts.models import ThrottleBucket


def take_attempt(ident: str | None, scope: str = "auth") -> float | None:
    """Count one attempt of client ``ident`` in ``scope``; None if allowed, else the seconds to wait.

    A sliding-window log, as DRF's own throttles keep, but stored in a database row that is locked
    while it is read and updated: attempts that arrive at once through different gunicorn workers
    (or containers sharing the database) are each counted, so none slips past the limit. Refused
    attempts are not counted. The rate is ``WALLET_SERVICE_AUTH_THROTTLE_RATE`` (None: no limit).
    """
    rate = settings.WALLET_SERVICE_AUTH_THROTTLE_RATE
    if rate is None:
        return None
    key = hashlib.sha256(f"{scope}:{ident or 'unknown'}".encode()).hexdigest()
    now = time.time()
    window_start = now - rate.period_seconds
    with transaction.atomic():
        bucket = _locked_bucket(key)
        hits = sorted(hit for hit in bucket.hits if hit > window_start)
        if len(hits) >= rate.num_requests:
            return hits[len(hits) - rate.num_requests] + rate.period_seconds - now
        hits.append(now)
        bucket.hits = hits
        bucket.updated_at = timezone.now()
        bucket.save(update_fields=["hits", "updated_at"])
    return None


def _locked_bucket(key: str) -> ThrottleBucket:
    """This IP's bucket, created if need be and locked, so concurrent attempts are counted one by one."""
    for _ in range(3):
        ThrottleBucket.objects.bulk_create([ThrottleBucket(key=key)], ignore_conflicts=True)
        bucket = ThrottleBucket.objects.select_for_update().filter(key=key).first()
        if bucket is not None:
            return bucket
        # purge_auth deleted an idle bucket between the insert and the lock: insert it again.
    raise RuntimeError(f"throttle bucket {key} keeps disappearing")


class AuthRateThrottle(BaseThrottle):
    """At most ``WALLET_SERVICE_AUTH_THROTTLE_RATE`` signup and login attempts per client IP.

    Counted by ``take_attempt``, exact across workers. Signup, login and the admin's login
    (wallet_service/admin_site.py) share one scope. Attempts refused with 429 are not counted.
    """

    scope = "auth"

    def __init__(self):
        self.retry_after: float | None = None

    def allow_request(self, request, view) -> bool:
        self.retry_after = take_attempt(self.get_ident(request), self.scope)
        return self.retry_after is None

    def wait(self) -> float | None:
        return self.retry_after
