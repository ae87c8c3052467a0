"""The fan-out reads only the events past its position, however many came before: measured with EXPLAIN ANALYZE."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from accounts.tests.factories import ClientFactory
from events.webhooks import delivery

EARLIER = 20_000
LATER = 10


def nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


@pytest.mark.django_db
def test_a_fan_out_batch_reads_the_events_past_its_position_not_every_event_from_the_first():
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
        cursor.execute(delivery.FANOUT_ROW)
        cursor.execute("UPDATE events_webhookfanout SET event_xid = '3', event_id = %s", [position])
        cursor.execute("ANALYZE events_event")
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + delivery.FANOUT, {"limit": 1000})
        (plan,) = cursor.fetchone()
        cursor.execute("SELECT event_id FROM events_webhookfanout")
        (moved_to,) = cursor.fetchone()
    plan = (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]
    scans = [node for node in nodes(plan) if node.get("Relation Name") == "events_event"]
    assert scans, plan
    read = sum(
        node["Actual Rows"] * node["Actual Loops"] + node.get("Rows Removed by Filter", 0) for node in scans
    ) + sum(node.get("Rows Removed by Join Filter", 0) for node in nodes(plan))
    assert read <= 2 * LATER, read  # was every event from the first: EARLIER + LATER
    assert moved_to == position + LATER
