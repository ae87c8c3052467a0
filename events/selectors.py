"""Reading the event feed, always scoped to the caller."""

from __future__ import annotations

import json
from typing import NamedTuple

from django.db import connections

from accounts.models import User
from events.models import Event
from wallet_service import db_routing

EVENTS = Event._meta.db_table


class UnknownEvent(ValueError):
    """``after`` is not one of the caller's event ids."""


class EventRow(NamedTuple):
    public_id: str
    type: str
    created_at: object
    data: dict


# The caller's events after a position, in (xid, id) order, and only those whose transaction is older
# than every transaction still running (pg_snapshot_xmin): an event that commits later can only have
# a larger xid than every event listed, so it sorts after them, even if its id is smaller. (The
# caller's own transaction is the exception: its writes are visible to it, as in the history.) Not
# the ORM: row comparisons on xid8 and the snapshot functions. One range of the (owner, xid, id) index.
FEED = f"""
SELECT e.public_id, e.type, e.created_at, e.data
  FROM {EVENTS} e
 WHERE e.owner_id = %(owner)s
   AND (e.xid, e.id) > (%(xid)s::xid8, %(id)s)
   AND (e.xid < pg_snapshot_xmin(pg_current_snapshot()) OR e.xid = pg_current_xact_id_if_assigned())
 ORDER BY e.xid, e.id
 LIMIT %(limit)s
"""
POSITION = f"SELECT xid::text, id FROM {EVENTS} WHERE public_id = %s AND owner_id = %s"


# A replica behind the server that listed ``after`` may not know it yet: the primary does.
@db_routing.replica_read(retry_on=(UnknownEvent,))
def event_list(*, owner: User, after: str | None = None, limit: int = 100, using: str) -> list[EventRow]:
    """Up to ``limit`` of ``owner``'s events, oldest first, after the event ``after`` (an id of the
    owner's; UnknownEvent otherwise). A new event always sorts after every event already listed, so a
    consumer that remembers the last id it saw misses nothing."""
    with connections[using].cursor() as cursor:
        position = ("0", 0)
        if after is not None:
            cursor.execute(POSITION, [after, owner.pk])
            position = cursor.fetchone()
            if position is None:
                raise UnknownEvent(after)
        cursor.execute(FEED, {"owner": owner.pk, "xid": position[0], "id": position[1], "limit": limit})
        # Django has psycopg hand jsonb over as text (for JSONField to decode): decode it here.
        return [EventRow(public_id, type_, created, json.loads(data)) for public_id, type_, created, data in cursor]
