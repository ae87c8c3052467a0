"""The service through PgBouncer in transaction pooling mode (docs/SCALING.md, "PgBouncer").

Four worker processes share two server connections: each transaction may run on another one than the
last, so any session state the code relied on (a prepared statement, a server-side cursor, a SET, a
session lock) would break these flows or leak between requests.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from wallet_service.tests.servers import (
    PgBouncer,
    Server,
    pgbouncer_binary,
    request,
    scratch_database,
    signup,
    walk_history,
)
from wallet_service.tests.utils import race

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path):
    pgbouncer_binary()  # before the database is made: skipped or failed at once without it
    with scratch_database("pgbouncer") as url:
        # Migrations connect to PostgreSQL itself: their advisory lock is a session's.
        Server({"DATABASE_URL": url}, tmp_path / "migrate.log").migrate()
        bouncer = PgBouncer(url, pool_size=2).start()
        database = url.rsplit("/", 1)[1]
        env = {"DATABASE_URL": bouncer.url(database), "WALLET_SERVICE_DATABASE_POOLER": "pgbouncer"}
        server = Server(env, tmp_path / "server.log", workers=4)
        try:
            yield server.start(), bouncer
        finally:
            server.stop()
            bouncer.stop()


def test_the_core_flows_work_through_pgbouncer_in_transaction_mode(server):
    server, bouncer = server
    base = server.base
    client = signup(base, "client", "ana@example.com")
    shop = signup(base, "company", "shop@example.com")
    wallet = request(base, "POST", "/wallet/create", {}, client)[1]["wallet"]
    shop_wallet = request(base, "POST", "/wallet/create", {}, shop)[1]["wallet"]

    for _ in range(3):
        assert request(base, "POST", "/wallet/deposit", {"wallet": wallet, "amount": "20.00"}, client)[0] == 200
    status, charged = request(base, "POST", "/wallet/charge", {"wallet": wallet, "amount": "15.00"}, shop)
    assert status == 200, charged
    status, failed = request(base, "POST", "/wallet/charge", {"wallet": wallet, "amount": "1000.00"}, shop)
    assert status == 402, failed

    # An idempotent deposit: executed once, replayed once.
    key = {"Idempotency-Key": "deposit-1"}
    first = request(base, "POST", "/wallet/deposit", {"wallet": wallet, "amount": "5.00"}, client, key)
    again = request(base, "POST", "/wallet/deposit", {"wallet": wallet, "amount": "5.00"}, client, key)
    assert first == again and first[0] == 200 and first[1]["balance"] == "50.00"

    # Hold, partial capture, then a refund of the charge.
    status, hold = request(base, "POST", "/wallet/hold", {"wallet": wallet, "amount": "10.00"}, shop)
    assert status == 201, hold
    status, captured = request(base, "POST", f"/wallet/hold/{hold['hold']}/capture", {"amount": "4.00"}, shop)
    assert status == 200 and captured["status"] == "captured", captured
    assert request(base, "GET", f"/wallet/hold/{hold['hold']}", token=shop)[1]["status"] == "captured"
    status, refunded = request(base, "POST", "/wallet/refund", {"operation": charged["operation"]}, shop)
    assert status == 200 and refunded["refunded"] == "15.00", refunded

    # Several charges at once on one wallet: exact, each one or a 402.
    charges = race([lambda: request(base, "POST", "/wallet/charge", {"wallet": wallet, "amount": "7.00"}, shop)] * 12)
    outcomes = Counter(status for status, _ in charges)
    assert outcomes == {200: 8, 402: 4}, outcomes  # 61.00 available: eight charges of 7.00

    # A bulk charge: one statement (the function wallet_charge_many), its own transaction through PgBouncer.
    items = [{"wallet": wallet, "amount": "3.00"}, {"wallet": wallet, "amount": "3.00"}]
    status, bulk = request(base, "POST", "/wallet/charges", {"charges": items}, shop)
    assert status == 200 and [item["status"] for item in bulk["results"]] == [200, 402], bulk

    status, info = request(base, "GET", f"/wallet/info/{wallet}", token=client)
    assert status == 200 and info["balance"] == "2.00", info
    shop_info = request(base, "GET", f"/wallet/info/{shop_wallet}", token=shop)[1]
    assert shop_info["balance"] == "63.00", shop_info  # 15 - 15 refunded + 4 captured + 8 x 7 + 3

    # History pages: every operation once, newest first, through many short transactions.
    history = walk_history(base, wallet, client, limit=3)
    assert len(history) == len({(item["type"], item["id"]) for item in history}) == 3 + 2 + 1 + 1 + 1 + 12 + 2 + 1
    # The feed shows an event once every transaction older than it on the server has ended (docs/API.md):
    # on a PostgreSQL server shared with other work, that may take a moment.
    deadline = time.monotonic() + 30
    while True:
        status, events = request(base, "GET", "/events", token=client)
        if status != 200 or events or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200 and events
    # Logging out takes effect at once.
    assert request(base, "POST", "/client/logout", {}, client)[0] in (200, 204)
    assert request(base, "GET", f"/wallet/info/{wallet}", token=client)[0] == 401

    # It really went through PgBouncer, and its few server connections were shared.
    database = [row for row in bouncer.show("STATS") if row["database"] not in ("pgbouncer",)]
    assert sum(row["total_xact_count"] for row in database) > 50
    pools = [row for row in bouncer.show("POOLS") if row["database"] != "pgbouncer"]
    assert sum(row["sv_active"] + row["sv_idle"] + row["sv_used"] for row in pools) <= 2
