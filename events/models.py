"""The event feed: what happened to a user's money and holds, written with the change it reports.

Events are a transactional outbox: each row is inserted by the transaction that moves the money (or
changes the hold), so it commits with it or not at all. An event belongs to one user: a charge writes
one for the charged wallet's owner and one for the company, each with ``data`` rendered as that user
sees the operation (wallets.items: the other party's token masked).
"""

from __future__ import annotations

import secrets
import time
from typing import Literal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

from wallet_service.db import CurrentTransactionId, DatabaseNow, TransactionIdField

EVENT_TYPES = (
    "deposit.succeeded",
    "charge.succeeded",
    "charge.failed",
    "hold.created",
    "hold.failed",
    "hold.captured",
    "hold.voided",
    "hold.expired",
    "refund.succeeded",
)
EventType = Literal[EVENT_TYPES]  # the enum of the response shapes that name event types


def new_event_id() -> str:
    """``evt_``, the millisecond it was made in 12 hex digits, then 12 random bytes (URL-safe base64): 32 characters.

    Time first so that new ids sort together: each insert into the unique index on ``public_id`` lands on the
    index's newest pages instead of a random one. With purely random ids every event dirtied a random leaf page,
    each one's first change after a checkpoint a full-page image in the WAL: a batch of 100 charges (200 events)
    wrote about 1.16 MB of WAL instead of 0.38 MB and cost PostgreSQL a third more CPU (docs/SCALING.md). Ids stay
    opaque and unguessable (96 random bits); the feed orders by commit, never by id.
    """
    return f"evt_{time.time_ns() // 1_000_000:012x}{secrets.token_urlsafe(12)}"


class Event(models.Model):
    """One event as its owner sees it. Rows are only inserted (and purged when old), never changed.

    The feed is in (xid, id) order and shows only events whose transaction is older than every
    transaction still running, so an event committed late with a smaller id can never appear before
    one already listed (events.selectors.event_list).
    """

    public_id = models.CharField(max_length=40, unique=True, default=new_event_id, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    type = models.CharField(max_length=32, choices=[(name, name) for name in EVENT_TYPES])
    data = models.JSONField()
    created_at = models.DateTimeField(db_default=DatabaseNow(), editable=False)
    xid = TransactionIdField(db_default=CurrentTransactionId(), editable=False)

    class Meta:
        indexes = [
            models.Index(fields=["owner", "xid", "id"], name="event_owner_feed_idx"),
            # Webhook fan-out reads every owner's events in commit order from its position.
            models.Index(fields=["xid", "id"], name="event_commit_order_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(type__in=EVENT_TYPES), name="event_type_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.public_id}"


# --- Webhooks --------------------------------------------------------------------------------------

MAX_WEBHOOKS_PER_USER = 16


def new_webhook_id() -> str:
    return "we_" + secrets.token_urlsafe(16)


class WebhookEndpoint(models.Model):
    """A URL a user wants its events POSTed to. The signing secret is stored encrypted
    (events.webhooks.secrets); it is shown once, in the answer to the POST that created it.

    ``created_at`` is taken after the creating transaction has its xid (events.webhooks.services), so an
    event created after it belongs to a transaction with a larger xid: the fan-out cannot pass such an
    event before the endpoint is visible to it.
    """

    public_id = models.CharField(max_length=40, unique=True, default=new_webhook_id, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    url = models.CharField(max_length=2048)
    event_types = ArrayField(models.CharField(max_length=32))
    secret_encrypted = models.TextField(editable=False)
    created_at = models.DateTimeField(editable=False)
    # Set at the first failed attempt after a success (or creation); cleared by a success.
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        indexes = [models.Index(fields=["owner", "id"], name="webhook_owner_idx")]

    def __str__(self) -> str:
        return f"{self.public_id} {self.url}"


class WebhookFanout(models.Model):
    """The one row that says how far in the events' commit order (xid, id) deliveries have been made."""

    id = models.SmallIntegerField(primary_key=True, default=1)
    event_xid = TransactionIdField()
    event_id = models.BigIntegerField()

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="webhook_fanout_single_row")]

    def __str__(self) -> str:
        return f"fan-out at ({self.event_xid}, {self.event_id})"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookDelivery(models.Model):
    """One event to one endpoint, until a 2xx (delivered) or the retries run out (failed).

    ``next_attempt_at`` is when it is due; a worker that claims it pushes it past the attempt's end
    (a lease), so no other worker sends it meanwhile, and a worker killed mid-attempt leaves it due
    again when the lease runs out.
    """

    # No index of its own: webhook_delivery_once's (endpoint, event) serves lookups by endpoint.
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="+", db_index=False)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.IntegerField(default=0)
    created_at = models.DateTimeField(db_default=DatabaseNow(), editable=False)
    next_attempt_at = models.DateTimeField(db_default=DatabaseNow())
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status = models.IntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="webhook_delivery_once"),
            models.CheckConstraint(
                condition=models.Q(status__in=DeliveryStatus.values), name="webhook_delivery_status_valid"
            ),
        ]
        # Every change of state is a new row version with an entry in each index whose rows it is in: a
        # delivery is made, leased, then delivered, so indexes are few and partial (the purge's two each
        # hold only the rows it deletes).
        indexes = [
            models.Index(
                fields=["next_attempt_at"], name="webhook_delivery_due_idx", condition=models.Q(status="pending")
            ),
            models.Index(
                fields=["delivered_at"], name="webhook_delivery_done_idx", condition=models.Q(status="delivered")
            ),
            models.Index(
                fields=["last_attempt_at"], name="webhook_delivery_failed_idx", condition=models.Q(status="failed")
            ),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} ({self.status})"


class WebhookAttemptCount(models.Model):
    """Attempts by outcome, counted by the workers in the database, so that /metrics (served by
    another process, perhaps another container) reports every worker's (events.webhooks.metrics)."""

    outcome = models.CharField(max_length=32, primary_key=True)
    count = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.outcome}: {self.count}"
