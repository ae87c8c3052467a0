"""The fan-out, and the metrics' oldest event not yet fanned out, read only the events past the fan-out's position,
however many came before: measured with EXPLAIN ANALYZE."""

from __future__ import annotations

import pytest
from django.db import connection

from accounts.tests.factories import ClientFactory
from events.webhooks import delivery, metrics
from wallet_service.tests.utils import explained, plan_nodes

EARLIER = 20_000
LATER = 10


def events_read(statement: str, params: dict | None = None) -> int:
    """The rows of events_event ``statement`` read (returned by its scans or removed by their filters and joins)."""
    read = 0
    for node in plan_nodes(explained(statement, params)):
        if node.get("Relation Name") == "events_event":
            read += node["Actual Rows"] * node["Actual Loops"] + node.get("Rows Removed by Filter", 0)
        read += node.get("Rows Removed by Join Filter", 0)
    return read


@pytest.fixture
def position() -> int:
    """EARLIER events already fanned out and LATER not, all of long-finished transactions (xid 3, the first
    normal one); the fan-out's position: the last of the EARLIER."""
    owner = ClientFactory().user
    with connection.cursor() as cursor:
        # Events of long-finished transactions (xid 3, the first normal one): EARLIER already fanned out, LATER not.
        cursor.execute(
            "INSERT INTO events_event (public_id, owner_id, type, data, xid) "
            "SELECT 'evt_plan_' || n, %s, 'deposit.succeeded', '{}', '3' FROM generate_series(1, %s) AS n",
            [owner.pk, EARLIER + LATER],
        )
        cursor.execute("SELECT id FROM events_event WHERE public_id = %s", [f"evt_plan_{EARLIER}"])
        (position,) = cursor.fetchone()
        cursor.execute(
            "INSERT INTO events_webhookfanout (id, event_xid, event_id) VALUES (1, '3', %(id)s)"
            " ON CONFLICT (id) DO UPDATE SET event_xid = '3', event_id = %(id)s",
            {"id": position},
        )
        cursor.execute("ANALYZE events_event")
    return position


@pytest.mark.django_db
def test_a_fan_out_batch_reads_the_events_past_its_position_not_every_event_from_the_first(position):
    read = events_read(delivery.FANOUT, {"lock": delivery.FANOUT_LOCK, "limit": 1000})
    assert 0 < read <= 2 * LATER, read  # was every event from the first: EARLIER + LATER
    with connection.cursor() as cursor:
        cursor.execute("SELECT event_id FROM events_webhookfanout")
        assert cursor.fetchone() == (position + LATER,)


@pytest.mark.django_db
def test_the_metrics_read_the_events_past_the_fan_out_position_not_every_event_from_the_first(position):
    read = events_read(metrics.STATE)
    assert 0 < read <= 2 * LATER, read
