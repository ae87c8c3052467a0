"""Idempotency keys: the stored answer of each money-moving request a client sent with a key."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from wallet_service.db import DatabaseNow


class IdempotencyKey(models.Model):
    """One ``Idempotency-Key`` of one user, with the request it named and the response it got.

    The row is inserted when the request starts executing and completed with the response in the
    same database transaction as the money the request moved, so that either both commit or
    neither does. Other transactions therefore only ever see completed rows: ``status_code`` is
    NULL only inside the transaction that claimed the key.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, db_index=False)
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=16)
    path = models.TextField()
    # SHA-256 of the canonical form of the parsed JSON body (see idempotency.fingerprints).
    body_digest = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)
    response_body = models.BinaryField(default=b"")
    content_type = models.CharField(max_length=100, default="")
    created_at = models.DateTimeField(db_default=DatabaseNow(), editable=False)

    class Meta:
        constraints = [
            # Also the index that finds a user's key, and what makes two racing requests with one
            # key wait for each other (the second INSERT waits on the first's uncommitted row).
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique_per_user"),
            models.CheckConstraint(
                condition=models.Q(status_code__isnull=True) | models.Q(status_code__gte=100, status_code__lte=599),
                name="idempotency_key_status_code_http",
            ),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_key_created_idx")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"
