"""Writing events: always inside the transaction of the change they report (a transactional outbox)."""

from __future__ import annotations

from collections.abc import Iterable

from events.models import Event


def events_write(events: Iterable[tuple[int, str, dict]]) -> None:
    """Insert ``(owner id, type, data)`` events in the current transaction, in one statement: they
    commit with the money they report, or not at all."""
    Event.objects.bulk_create([Event(owner_id=owner, type=type_, data=data) for owner, type_, data in events])
