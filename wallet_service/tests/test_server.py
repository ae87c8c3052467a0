"""The service as it is deployed: granian worker processes over real HTTP.

These start their own servers, so they take a few seconds each; they are marked ``slow`` and run
in ``make test`` and CI like every other test.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from wallet_service.config import BASE_DIR
from wallet_service.tests.servers import Server, request, scratch_database, signup, walk_history
from wallet_service.tests.utils import race

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path):
    with scratch_database("server") as url:
        server = Server({"DATABASE_URL": url}, tmp_path / "server.log")
        server.migrate()
        yield server.start()
        server.stop()


def test_racing_charges_and_deposits_stay_exact_across_worker_processes(server):
    base = server.base
    client = signup(base, "client", "ana@example.com")
    shop = signup(base, "company", "shop@example.com")
    wallet = request(base, "POST", "/wallet/create", {}, client)[1]["wallet"]
    shop_wallet = request(base, "POST", "/wallet/create", {}, shop)[1]["wallet"]

    deposits = race(
        [lambda: request(base, "POST", "/wallet/deposit", {"wallet": wallet, "amount": "2.50"}, client)] * 40
    )
    assert [status for status, _ in deposits] == [200] * 40
    assert request(base, "GET", f"/wallet/info/{wallet}", token=client)[1]["balance"] == "100.00"

    charges = race([lambda: request(base, "POST", "/wallet/charge", {"wallet": wallet, "amount": "10.00"}, shop)] * 20)
    assert Counter(status for status, _ in charges) == {200: 10, 402: 10}
    assert request(base, "GET", f"/wallet/info/{wallet}", token=client)[1]["balance"] == "0.00"
    assert request(base, "GET", f"/wallet/info/{shop_wallet}", token=shop)[1]["balance"] == "100.00"
    history = request(base, "GET", f"/wallet/history/{wallet}?limit=1000", token=client)[1]
    assert Counter((item["type"], item["success"]) for item in history) == {
        ("deposit", True): 40,
        ("charge", True): 10,
        ("charge", False): 10,
    }
    # Page by page, the walk sees the same operations in the same order, each once.
    assert [item["id"] for item in walk_history(base, wallet, client, limit=3)] == [item["id"] for item in history]
    # from <= date < to, with the date of an operation as the bound.
    middle = history[len(history) // 2]
    since = request(base, "GET", f"/wallet/history/{wallet}?limit=1000&from={middle['date']}", token=client)[1]
    until = request(base, "GET", f"/wallet/history/{wallet}?limit=1000&to={middle['date']}", token=client)[1]
    newer_or_same = [item["id"] for item in history if item["date"] >= middle["date"]]
    assert [item["id"] for item in since] == newer_or_same
    assert [item["id"] for item in until] == [item["id"] for item in history if item["date"] < middle["date"]]
    assert middle["id"] in newer_or_same
    # The ledger audit agrees.
    audit = subprocess.run(
        [sys.executable, "manage.py", "audit_ledger"],
        cwd=BASE_DIR,
        env=server.env,
        capture_output=True,
        text=True,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "Sum of balances:             100.00" in audit.stdout


def test_status_is_503_and_requests_fail_cleanly_when_the_database_is_unreachable(tmp_path):
    unreachable = {"DATABASE_URL": "postgres://postgres@127.0.0.1:1/wallet_service"}
    server = Server(unreachable, tmp_path / "server.log", workers=1).start()
    try:
        status, body = request(server.base, "GET", "/status")
        assert status == 503
        assert body["code"] == "service_unavailable"
        assert body["detail"] == "The database cannot be reached."
        status, body = request(server.base, "POST", "/client/login", {"email": "a@example.com", "password": "x"})
        assert status == 503
        assert body["code"] == "service_unavailable"
        # With an Idempotency-Key the request's transaction cannot even begin: still a 503.
        status, body = request(
            server.base, "POST", "/wallet/deposit", {"wallet": "w", "amount": "1"}, "key", {"Idempotency-Key": "k"}
        )
        assert status == 503
        assert body["code"] == "service_unavailable"
    finally:
        server.stop()
