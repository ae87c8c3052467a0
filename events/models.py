"""The event feed: what happened to a user's money and holds, written with the change it reports.

Events are a transactional outbox: each row is inserted by the transaction that moves the money (or
changes the hold), so it commits with it or not at all. An event belongs to one user: a charge writes
one for the charged wallet's owner and one for the company, each with ``data`` rendered as that user
sees the operation (wallets.items: the other party's token masked).
"""

from __future__ import annotations

import secrets

from django.conf import settings
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


def new_event_id() -> str:
    return "evt_" + secrets.token_urlsafe(16)


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
        indexes = [models.Index(fields=["owner", "xid", "id"], name="event_owner_feed_idx")]
        constraints = [
            models.CheckConstraint(condition=models.Q(type__in=EVENT_TYPES), name="event_type_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.public_id}"
