"""Claiming an idempotency key, storing the response it got, and purging old keys.

Every function here runs inside the transaction of the request it serves (see
idempotency.apis.IdempotentApiMixin), so the key's record commits or rolls back with the money.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import OperationalError, connection, transaction
from django.utils import timezone

from accounts.models import User
from idempotency.errors import IdempotencyKeyInUse, IdempotencyKeyReused
from idempotency.models import IdempotencyKey

# How long a repeat waits for the first request with its key to finish before it is answered
# 409 idempotency_key_in_use. A charge takes milliseconds; a first request still running after
# this is stuck, and the client should retry later rather than hold a worker.
KEY_WAIT = "5s"
LOCK_NOT_AVAILABLE = "55P03"

# Keys are kept at least this long (the contract's promise); purge_idempotency_keys removes older ones.
MIN_RETENTION = timedelta(hours=24)


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: bytes
    content_type: str


def _insert_claim(*, user: User, key: str, method: str, path: str, body_digest: str) -> int | None:
    """INSERT the key unless it exists; the new row's id, or None when the key was already used.

    When another transaction holds an uncommitted row for the same key, the INSERT waits for it
    to end (the unique index): if it committed, the key exists; if it rolled back, this one
    inserts. Either way no two requests with one key ever execute at once.
    """
    table = IdempotencyKey._meta.db_table
    sql = (
        f"INSERT INTO {table} (user_id, key, method, path, body_digest, response_body, content_type, created_at) "
        f"VALUES (%s, %s, %s, %s, %s, %s, '', %s) ON CONFLICT (user_id, key) DO NOTHING RETURNING id"
    )
    created_at = connection.ops.adapt_datetimefield_value(timezone.now())
    params = [user.pk, key, method, path, body_digest, b"", created_at]
    with connection.cursor() as cursor:
        # Bound the wait for a first request that is still running, then restore the setting, so
        # that the rest of the transaction (the wallet locks) waits as long as it always did.
        cursor.execute("SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, true)", [KEY_WAIT])
        previous = cursor.fetchone()[0]
        try:
            with transaction.atomic():  # a savepoint: a timed-out wait must not poison the request's transaction
                cursor.execute(sql, params)
                row = cursor.fetchone()
        except OperationalError as error:
            if getattr(error.__cause__, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                raise IdempotencyKeyInUse() from error
            raise
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])
    return row[0] if row else None


def idempotency_claim(*, user: User, key: str, method: str, path: str, body_digest: str) -> int | StoredResponse:
    """Claim ``key`` for this request, or find the response a previous request with it got.

    Returns the id of the new claim (the caller executes the request, then calls
    ``idempotency_complete`` or rolls back); or the StoredResponse to replay. Raises
    IdempotencyKeyReused when the key named another method, path or body, and
    IdempotencyKeyInUse when a request with the key is still running after KEY_WAIT.
    """
    request = {"user": user, "key": key, "method": method, "path": path, "body_digest": body_digest}
    for _ in range(3):
        claim_id = _insert_claim(**request)
        if claim_id is not None:
            return claim_id
        stored = idempotency_check(**request)
        if stored is not None:
            return stored
        # The key was purged between the INSERT and the read: claim it again.
    raise IdempotencyKeyInUse()


def idempotency_check(*, user: User, key: str, method: str, path: str, body_digest: str) -> StoredResponse | None:
    """The stored response for this request under ``key``, or None when the key is unused.

    Raises IdempotencyKeyReused when the key was used for another method, path or body.
    """
    stored = IdempotencyKey.objects.filter(user=user, key=key).first()
    if stored is None:
        return None
    if stored.method != method or stored.path != path:
        raise IdempotencyKeyReused(
            f"This Idempotency-Key was used for {stored.method} {stored.path}; use a new key for another request."
        )
    if stored.body_digest != body_digest:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used with another body; use a new key for another request."
        )
    return StoredResponse(stored.status_code, bytes(stored.response_body), stored.content_type)


def idempotency_complete(*, claim_id: int, response: StoredResponse) -> None:
    """Store the response of the request that claimed ``claim_id``, in the request's transaction."""
    IdempotencyKey.objects.filter(pk=claim_id).update(
        status_code=response.status_code, response_body=response.body, content_type=response.content_type
    )


def idempotency_purge(*, older_than: timedelta, batch_size: int = 10_000) -> int:
    """Delete keys created more than ``older_than`` ago, in batches; the number deleted.

    Refuses a window shorter than MIN_RETENTION: the contract keeps keys at least 24 hours.
    """
    if older_than < MIN_RETENTION:
        raise ValueError(f"keys are kept at least {MIN_RETENTION}")
    cutoff = timezone.now() - older_than
    deleted = 0
    while True:
        # Small batches keep each transaction (and its locks) short on a large table.
        batch = list(IdempotencyKey.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:batch_size])
        if not batch:
            return deleted
        deleted += IdempotencyKey.objects.filter(pk__in=batch).delete()[0]
