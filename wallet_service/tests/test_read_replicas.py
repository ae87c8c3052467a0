"""Read replicas (docs/SCALING.md): a real primary and a real streaming replica, the service in front.

Replay is paused on the replica to make its lag deterministic: what it has not replayed is how a read
it served can be told from a read the primary served.
"""

from __future__ import annotations

import time

import pytest

from wallet_service.tests.servers import PostgresCluster, ReplicaCluster, Server, request, signup, walk_history

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clusters():
    primary = PostgresCluster().init()
    replica = None
    try:
        primary.query("postgres", "CREATE DATABASE wallet")
        replica = ReplicaCluster(primary).init()
        yield primary, replica
    finally:
        if replica is not None:
            replica.destroy()
        primary.destroy()


@pytest.fixture
def server(clusters, tmp_path):
    primary, replica = clusters
    # One worker: every request samples the primary's position in the same process (db_routing).
    env = {"DATABASE_URL": primary.url("wallet"), "WALLET_SERVICE_READ_REPLICA_URLS": replica.url("wallet")}
    server = Server(env, tmp_path / "server.log", workers=1)
    server.migrate()
    server.start()
    yield server
    server.stop()
    replica.resume_replay()


def balance(base: str, wallet: str, token: str) -> str:
    status, body = request(base, "GET", f"/wallet/info/{wallet}", token=token)
    assert status == 200, body
    return body["balance"]


def test_a_caller_sees_its_own_writes_while_others_read_a_replica_until_it_is_a_second_behind(server, clusters):
    primary, replica = clusters
    base = server.base
    shop = signup(base, "company", "shop@example.com")
    ana = signup(base, "client", "ana@example.com")
    shop_wallet = request(base, "POST", "/wallet/create", {}, shop)[1]["wallet"]
    ana_wallet = request(base, "POST", "/wallet/create", {}, ana)[1]["wallet"]
    assert request(base, "POST", "/wallet/deposit", {"wallet": ana_wallet, "amount": "100.00"}, ana)[0] == 200

    replica.catch_up()
    replica.pause_replay()
    # The shop charges Ana: the primary has it, the paused replica never will until replay resumes.
    status, charged = request(base, "POST", "/wallet/charge", {"wallet": ana_wallet, "amount": "30.00"}, shop)
    assert status == 200, charged
    # The shop's own write: fresh at once, though the only replica has not replayed it.
    assert balance(base, shop_wallet, shop) == "30.00"
    status, hold = request(base, "POST", "/wallet/hold", {"wallet": ana_wallet, "amount": "5.00"}, shop)
    assert status == 201, hold
    assert request(base, "GET", f"/wallet/hold/{hold['hold']}", token=shop)[0] == 200
    # Ana wrote nothing since the replica replayed her deposit, and it is less than a second behind:
    # her reads are the replica's, which shows no charge yet (the primary would say 70.00).
    assert balance(base, ana_wallet, ana) == "100.00"
    status, history = request(base, "GET", f"/wallet/history/{ana_wallet}", token=ana)
    assert status == 200
    assert [item["amount"] for item in history] == ["100.00"]
    status, events = request(base, "GET", "/events", token=ana)
    assert status == 200
    assert all(event["data"].get("amount") != "30.00" for event in events), events

    # A second on, the paused replica is more than a second behind the primary: never used again.
    time.sleep(1.1)
    assert balance(base, ana_wallet, ana) == "70.00"
    status, history = request(base, "GET", f"/wallet/history/{ana_wallet}", token=ana)
    assert "30.00" in [item["amount"] for item in history]

    # Ana's own write while the replica is stale: her next read is fresh, whatever the replica says.
    replica.resume_replay()
    replica.catch_up()
    replica.pause_replay()
    assert request(base, "POST", "/wallet/deposit", {"wallet": ana_wallet, "amount": "1.00"}, ana)[0] == 200
    assert balance(base, ana_wallet, ana) == "71.00"


def test_a_stopped_replica_is_skipped_without_an_error(server, clusters):
    primary, replica = clusters
    base = server.base
    ana = signup(base, "client", "bea@example.com")
    wallet = request(base, "POST", "/wallet/create", {}, ana)[1]["wallet"]
    assert request(base, "POST", "/wallet/deposit", {"wallet": wallet, "amount": "12.00"}, ana)[0] == 200
    assert request(base, "POST", "/wallet/deposit", {"wallet": wallet, "amount": "3.00"}, ana)[0] == 200
    replica.catch_up()
    # The replica is fresh, so these reads may be its (a walk's later pages too, the cursor's snapshot
    # carrying where it was taken); the worker now holds a connection to it.
    assert [item["amount"] for item in walk_history(base, wallet, ana, limit=1)] == ["3.00", "12.00"]
    assert balance(base, wallet, ana) == "15.00"
    replica.stop()
    try:
        for _ in range(5):
            assert balance(base, wallet, ana) == "15.00"
            status, history = request(base, "GET", f"/wallet/history/{wallet}", token=ana)
            assert status == 200 and len(history) == 2
            assert request(base, "GET", "/events", token=ana)[0] == 200
        assert request(base, "POST", "/wallet/deposit", {"wallet": wallet, "amount": "1.00"}, ana)[0] == 200
        assert balance(base, wallet, ana) == "16.00"
    finally:
        replica.start()
