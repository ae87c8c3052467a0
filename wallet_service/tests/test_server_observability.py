"""Metrics and logs of the service as deployed: granian worker processes over real HTTP."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from deploy.httpcall import send
from wallet_service.database_urls import settings_url
from wallet_service.tests.servers import Server, request, scrape, scratch_database, signup
from wallet_service.tests.utils import race

pytestmark = pytest.mark.slow


def business(samples: dict) -> dict[str, float]:
    return {
        "deposits": samples[("wallet_deposits_total", ())],
        "deposited": samples[("wallet_deposited_amount_total", ())],
        "succeeded": samples[("wallet_charges_total", (("outcome", "succeeded"),))],
        "insufficient": samples[("wallet_charges_total", (("outcome", "insufficient_funds"),))],
        "charged": samples[("wallet_charged_amount_total", ())],
    }


@pytest.fixture
def database_url():
    """A PostgreSQL database of the test's own for the server it starts."""
    with scratch_database("observability") as url:
        yield url


def worker_pids(master: int) -> set[int]:
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[1]) == master:
            pids.add(int(stat.parent.name))
    return pids


def wait_for(condition, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_metrics_add_up_every_worker_even_after_workers_die(tmp_path, database_url):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left over by an earlier run")
    env = {"DATABASE_URL": database_url, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    server = Server(env, tmp_path / "server.log", workers=2)
    server.migrate()
    server.start()
    try:
        base = server.base
        # An earlier run's samples are wiped at start, not added to this run's.
        assert not (metrics_dir / "counter_999999.db").exists()
        client = signup(base, "client", "ana@example.com")
        shop = signup(base, "company", "shop@example.com")
        wallet = request(base, "POST", "/wallet/create", {}, client)[1]["wallet"]
        request(base, "POST", "/wallet/create", {}, shop)
        deposit = {"wallet": wallet, "amount": "1.25"}
        statuses = race([lambda: request(base, "POST", "/wallet/deposit", deposit, client)[0]] * 12)
        assert statuses == [200] * 12
        assert request(base, "POST", "/wallet/charge", {"wallet": wallet, "amount": "100"}, shop)[0] == 402
        assert request(base, "POST", "/wallet/charge", {"wallet": wallet, "amount": "5"}, shop)[0] == 200
        expected = {"deposits": 12, "deposited": 15.0, "succeeded": 1, "insufficient": 1, "charged": 5.0}

        # Whichever worker answers the scrape, it reports the whole server's totals.
        for _ in range(6):
            assert business(scrape(base)) == expected

        # Every worker that counted dies; their replacements still report the totals.
        old = worker_pids(server.process.pid)
        assert len(old) == 2
        # A live gauge's file for each of them (the service has none of its own yet): removed when it dies.
        for pid in old:
            (metrics_dir / f"gauge_livesum_{pid}.db").write_bytes(b"")
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: len(new := worker_pids(server.process.pid)) == 2 and not new & old)
        samples = wait_for(lambda: scrape(base))
        assert business(samples) == expected
        assert not list(metrics_dir.glob("gauge_live*"))
        assert samples[("django_http_requests_total_by_method_total", (("method", "POST"),))] >= 18
        # Queries go through django-prometheus's backend, counted across the workers too.
        assert samples[("django_db_execute_total", (("alias", "default"), ("vendor", "postgresql")))] > 18
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "Traceback" not in log  # the respawn that marks dead workers ran without an error
    assert list(metrics_dir.glob("*.db"))  # a directory given by the operator is kept


def test_the_server_logs_only_json_lines_with_request_ids(tmp_path, database_url):
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    env = {
        "DATABASE_URL": database_url,  # /status connects to it
        "WALLET_SERVICE_LOG_LEVEL": "info",
        "TMPDIR": str(private_tmp),
    }
    server = Server(env, tmp_path / "server.log", workers=1).start()  # no table is read: no migrations
    try:
        status, headers, _ = send(server.base, "GET", "/wallet/list", headers={"X-Request-ID": "trace-123"})
        assert status == 401
        assert headers["X-Request-ID"] == "trace-123"
        generated = send(server.base, "GET", "/status")[1]["X-Request-ID"]
        # The metrics directory the server made for itself, in TMPDIR.
        assert [path.name.startswith("wallet-service-metrics-") for path in private_tmp.iterdir()] == [True]
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message", "request_id", "pid"} <= line.keys() for line in lines)
    # One line for the request (Django's own warning about a 4xx, which repeats it, is off).
    (request_line,) = [line for line in lines if line["request_id"] == "trace-123"]
    assert (request_line["method"], request_line["path"], request_line["status"]) == ("GET", "/wallet/list", 401)
    assert request_line["duration_ms"] > 0
    # A successful health check is logged at debug only: not at info.
    assert not [line for line in lines if line["request_id"] == generated]
    # granian's own messages are JSON too; its access log is off.
    assert any(line["logger"] == "_granian" and "Spawning worker-1" in line["message"] for line in lines)
    assert "granian.access" not in {line["logger"] for line in lines}
    # ...and the directory is removed when the server exits.
    assert list(private_tmp.iterdir()) == []


def test_postgresql_connections_persist_and_recover_through_the_metrics_wrapper(transactional_db, tmp_path):
    url = settings_url(connection.settings_dict) + "?application_name=wallet-obs-server"
    server = Server({"DATABASE_URL": url}, tmp_path / "server.log", workers=1).start()
    try:
        for _ in range(10):
            assert request(server.base, "GET", "/status")[0] == 200
        connections = ("django_db_new_connections_total", (("alias", "default"), ("vendor", "postgresql")))
        # CONN_MAX_AGE: the one worker opened one connection for ten requests.
        assert scrape(server.base)[connections] == 1
        with psycopg.connect(settings_url(connection.settings_dict, name="postgres")) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'wallet-obs-server'"
            ).fetchall()
        assert killed == [(True,)]
        # CONN_HEALTH_CHECKS: the dead connection is noticed and replaced before the request uses it.
        assert request(server.base, "GET", "/status")[0] == 200
        assert scrape(server.base)[connections] == 2
    finally:
        server.stop()
