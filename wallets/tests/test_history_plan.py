"""A history page costs the same whatever the planner's statistics say: fresh or analysed tables, a short
history or a long one, the first page or one after a cursor. Measured with EXPLAIN (ANALYZE, BUFFERS)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import ClientFactory, CompanyFactory
from wallets import selectors
from wallets.models import Operation, Wallet
from wallets.selectors import HistoryPosition

LIMIT = 100


def nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def explain_page(owner, wallet, after=None) -> tuple[dict, selectors.HistoryPage]:
    with CaptureQueriesContext(connection) as captured:
        page = selectors.operation_list(
            owner=owner, wallet_token=wallet.token, after=after, limit=LIMIT + 1, using="default"
        )
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + captured.captured_queries[0]["sql"])
        (plan,) = cursor.fetchone()
    plan = plan if isinstance(plan, list) else json.loads(plan)
    return plan[0]["Plan"], page


def check_shape(plan: dict) -> int:
    """The page's buffers, after checking it neither scans the ledger whole nor sorts more than two pages."""
    for node in nodes(plan):
        if node.get("Relation Name") == "wallets_operation":
            assert node["Node Type"] not in ("Seq Scan", "Bitmap Heap Scan"), node["Node Type"]
        if node["Node Type"] in ("Sort", "Incremental Sort"):
            assert node["Plans"][0]["Actual Rows"] <= 2 * (LIMIT + 1), node["Plans"][0]["Actual Rows"]
    return plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]


def fill(wallet: Wallet, shop: Wallet, deposits: int) -> None:
    Operation.objects.bulk_create(
        [Operation(kind="deposit", target=wallet, amount=Decimal(1), success=True) for _ in range(deposits)],
        batch_size=5000,
    )
    Operation.objects.bulk_create(
        [
            Operation(kind="charge", source=wallet, target=shop, amount=Decimal(1), success=True)
            for _ in range(deposits // 10)
        ],
        batch_size=5000,
    )


@pytest.mark.django_db
def test_a_page_reads_two_index_ranges_on_fresh_and_analysed_tables_short_and_long_histories():
    shop = Wallet.objects.create(owner=CompanyFactory().user)
    short_owner, long_owner = ClientFactory().user, ClientFactory().user
    short, long = Wallet.objects.create(owner=short_owner), Wallet.objects.create(owner=long_owner)
    others = [Wallet.objects.create(owner=ClientFactory().user) for _ in range(20)]
    fill(short, shop, 300)
    fill(long, shop, 10_000)
    Operation.objects.bulk_create(
        [Operation(kind="deposit", target=others[n % 20], amount=Decimal(1), success=True) for n in range(20_000)],
        batch_size=5000,
    )
    for state in ("fresh", "analysed"):
        if state == "analysed":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE wallets_operation")
                cursor.execute("ANALYZE wallets_wallet")
        short_plan, _ = explain_page(short_owner, short)
        long_plan, page = explain_page(long_owner, long)
        last = page.operations[LIMIT - 1]
        deep_plan, deep = explain_page(long_owner, long, HistoryPosition(last.created_at, last.id, page.snapshot))
        assert len(deep.operations) == LIMIT + 1
        short_cost, long_cost, deep_cost = (check_shape(plan) for plan in (short_plan, long_plan, deep_plan))
        # Flat: a history 33 times longer, or a page after a cursor, reads about as much as a short one.
        assert long_cost <= 1.5 * short_cost + 20, (state, short_cost, long_cost)
        assert deep_cost <= 1.5 * short_cost + 20, (state, short_cost, deep_cost)
