"""Registering and removing webhook endpoints, always scoped to their owner."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, transaction
from django.db.models import Func

from accounts.models import User
from events.models import EVENT_TYPES, MAX_WEBHOOKS_PER_USER, WebhookEndpoint
from events.webhooks.secrets import encrypt_secret, new_secret
from wallet_service.api.errors import NotFound, ServiceError
from wallet_service.api.fields import PUBLIC_ID_RE


class WebhookLimitReached(ServiceError):
    code = "webhook_limit_reached"
    default_detail = f"You already have {MAX_WEBHOOKS_PER_USER} webhook endpoints: delete one first."


class WebhookNotFound(NotFound):
    default_detail = "Webhook endpoint not found."


class ClockTimestamp(Func):
    """``clock_timestamp()``: the time now, not when the transaction began."""

    function = "clock_timestamp"
    template = "%(function)s()"


def webhook_create(*, owner: User, url: str, event_types: Sequence[str] | None) -> tuple[WebhookEndpoint, str]:
    """A new endpoint of ``owner``'s and its secret (the only time the secret is returned).
    ``url`` must already have been checked (events.webhooks.addresses.check_url)."""
    types = list(EVENT_TYPES) if not event_types else [name for name in EVENT_TYPES if name in set(event_types)]
    secret = new_secret()
    with transaction.atomic():
        # One creation at a time per user, so two concurrent ones cannot both pass the limit.
        User.objects.select_for_update().filter(pk=owner.pk).values_list("pk").get()
        if WebhookEndpoint.objects.filter(owner=owner).count() >= MAX_WEBHOOKS_PER_USER:
            raise WebhookLimitReached()
        # The transaction has its xid (the row lock above took one) before the clock is read for
        # created_at: every event created after that time has a larger xid, so the fan-out, which only
        # passes events older than every running transaction, cannot pass one before this row is visible.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_xact_id()")
        endpoint = WebhookEndpoint(owner=owner, url=url, event_types=types, created_at=ClockTimestamp())
        endpoint.secret_encrypted = encrypt_secret(endpoint.public_id, secret)
        endpoint.save()
        endpoint.refresh_from_db(fields=["created_at"])
    return endpoint, secret


def webhook_list(*, owner: User) -> list[WebhookEndpoint]:
    return list(WebhookEndpoint.objects.filter(owner=owner).order_by("id"))


def webhook_delete(*, owner: User, public_id: str) -> None:
    """Remove ``owner``'s endpoint and its pending deliveries; another user's is not found."""
    if not PUBLIC_ID_RE.fullmatch(public_id):
        raise WebhookNotFound()
    deleted, _ = WebhookEndpoint.objects.filter(owner=owner, public_id=public_id).delete()
    if not deleted:
        raise WebhookNotFound()
