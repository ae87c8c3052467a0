"""``manage.py worker`` delivering webhooks for real: killed and restarted, two at once, and its database
restarted under it. Workers are subprocesses with the delivery delays of wallet_service/tests/webhook_settings.py
(0.2 s retries, 3 s leases); receivers are real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest
from django.db import connection

from accounts.tests.factories import ClientFactory
from conftest import authenticated_client
from events.models import Event, WebhookDelivery
from events.tests.receiver import Receiver
from wallet_service.config import BASE_DIR
from wallet_service.database_urls import settings_url
from wallet_service.tests.servers import PostgresCluster, Server, request, signup
from wallets import services
from wallets.tests.factories import WalletFactory

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def allow_private(settings):
    settings.WALLET_SERVICE_WEBHOOK_ALLOW_PRIVATE = True


def worker_env(database_url: str, secret_key: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WALLET_SERVICE_")}
    return env | {
        "DATABASE_URL": database_url,
        "WALLET_SERVICE_SECRET_KEY": secret_key,
        "WALLET_SERVICE_WEBHOOK_ALLOW_PRIVATE": "True",
        "WALLET_SERVICE_LOG_LEVEL": "info",
        "DJANGO_SETTINGS_MODULE": "wallet_service.tests.webhook_settings",
    }


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "manage.py", "worker"], cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )


def stop_worker(worker: subprocess.Popen, log: Path) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0, log.read_text()[-3000:]


def subscribed_users(receiver: Receiver, count: int) -> list:
    users = []
    for index in range(count):
        api = authenticated_client(ClientFactory().user)
        response = api.post("/webhooks", {"url": receiver.url(path=f"/u{index}")}, format="json")
        assert response.status_code == 201, response.content
        users.append((api.user, WalletFactory(owner=api.user)))
    return users


def deposits(users, each: int) -> set[str]:
    for user, wallet in users:
        for cents in range(1, each + 1):
            services.wallet_deposit(owner=user, wallet_token=wallet.token, amount=Decimal(cents))
    return set(Event.objects.values_list("public_id", flat=True))


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_deliveries_and_restarted_delivers_every_event(tmp_path, settings):
    receiver = Receiver(delay=0.05).start()
    log = tmp_path / "worker.log"
    env = worker_env(settings_url(connection.settings_dict), settings.SECRET_KEY)
    try:
        users = subscribed_users(receiver, 2)
        expected = deposits(users, 40)
        worker = start_worker(env, log)
        assert receiver.wait_for(10, timeout=40), log.read_text()[-3000:]
        worker.kill()  # SIGKILL: attempts in flight and results not yet recorded are lost with it
        worker.wait()
        got_before = set(receiver.ids())
        assert got_before < expected
        worker = start_worker(env, log)
        try:
            assert receiver.wait_for(len(expected), timeout=40), log.read_text()[-3000:]
            assert set(receiver.ids()) == expected
            assert_eventually_all_delivered(len(expected))
        finally:
            stop_worker(worker, log)
    finally:
        receiver.stop()
    attempts = [line for line in json_lines(log) if line.get("message") == "webhook attempt"]
    assert {line["event"] for line in attempts} <= expected and attempts


@pytest.mark.django_db(transaction=True)
def test_two_workers_never_send_one_delivery_at_the_same_time(tmp_path, settings):
    """Both workers take deliveries, and one delivery's attempts never overlap in time, whichever workers
    make them. A delivery may well be attempted again, by either worker, after a failed attempt (on a
    loaded machine a 2 s timeout passes) or a lease that ran out before the result was recorded: at least
    once, never twice at the same time."""
    seen, lock = set(), threading.Lock()

    def answer(request):  # one event in four fails its first attempt: retries, by either worker
        with lock:
            first = request.headers["webhook-id"] not in seen
            seen.add(request.headers["webhook-id"])
            return (503, b"busy") if first and len(seen) % 4 == 0 else (200, b"ok")

    receiver = Receiver(answer, delay=0.2).start()  # 8 attempts in flight per worker: one alone needs seconds
    env = worker_env(settings_url(connection.settings_dict), settings.SECRET_KEY)
    logs = [tmp_path / "worker1.log", tmp_path / "worker2.log"]
    try:
        users = subscribed_users(receiver, 3)
        workers = [start_worker(env, log) for log in logs]
        try:
            wait_for_line(logs, "webhook delivery started")  # both polling before the first event
            expected = deposits(users, 25)
            assert receiver.wait_for(len(expected), timeout=60), logs[0].read_text()[-3000:]
            assert_eventually_all_delivered(len(expected))
        finally:
            for worker, log in zip(workers, logs, strict=True):
                stop_worker(worker, log)
        attempts = [
            line | {"worker": index}
            for index, log in enumerate(logs)
            for line in json_lines(log)
            if line.get("message") == "webhook attempt"
        ]
        assert {line["worker"] for line in attempts} == {0, 1}  # both worked
        assert any(line["attempt"] > 1 for line in attempts)
        by_delivery = defaultdict(list)
        for line in attempts:
            by_delivery[line["delivery"]].append(line)
        assert {tries[0]["event"] for tries in by_delivery.values()} == expected and len(by_delivery) == len(expected)
        failed = set()
        for tries in by_delivery.values():
            tries.sort(key=lambda line: line["attempt"])
            # Each attempt was claimed once, by one worker (attempt numbers are the claims' own) ...
            assert [line["attempt"] for line in tries] == list(range(1, len(tries) + 1)), tries
            # ... and started after the one before it had ended (times rounded to the millisecond).
            for before, after in pairwise(tries):
                assert after["started_at"] >= before["started_at"] + before["duration_ms"] / 1000 - 0.002, tries
            failed |= {line["event"] for line in tries if line["outcome"] != "delivered"}
        received = Counter(receiver.ids())
        assert set(received) == expected
        # The receiver got no more requests for an event than attempts were made (sent once per attempt);
        # it saw one twice at once only if the earlier attempt had given up on it (its own handler late).
        attempts_by_event = Counter(line["event"] for line in attempts)
        assert all(count <= attempts_by_event[event] for event, count in received.items())
        assert set(receiver.overlaps) <= failed
    finally:
        receiver.stop()


def wait_for_line(logs: list[Path], message: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not all(any(line.get("message") == message for line in json_lines(log)) for log in logs):
        assert time.monotonic() < deadline, [log.read_text()[-1000:] for log in logs]
        time.sleep(0.05)


def test_the_worker_recovers_by_itself_when_postgresql_restarts(tmp_path):
    cluster = PostgresCluster().init()
    receiver = Receiver().start()
    server = worker = None
    log = tmp_path / "worker.log"
    try:
        cluster.query("postgres", "CREATE DATABASE hooks")
        server = Server(
            {"DATABASE_URL": cluster.url("hooks"), "WALLET_SERVICE_WEBHOOK_ALLOW_PRIVATE": "True"},
            tmp_path / "gunicorn.log",
            workers=1,
        )
        server.migrate()
        server.start()
        token = signup(server.base, "client", "hooks@example.com")
        status, wallet = request(server.base, "POST", "/wallet/create", {}, token)
        assert status == 201, wallet
        status, hook = request(server.base, "POST", "/webhooks", {"url": receiver.url()}, token)
        assert status == 201, hook
        worker = start_worker(worker_env(cluster.url("hooks"), server.env["WALLET_SERVICE_SECRET_KEY"]), log)

        def deposit(amount: str) -> None:
            deadline = time.monotonic() + 30
            while True:
                status, body = request(
                    server.base, "POST", "/wallet/deposit", {"wallet": wallet["wallet"], "amount": amount}, token
                )
                if status == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)  # 503 while the server's connection comes back
            assert status == 200, body

        deposit("1")
        assert receiver.wait_for(1, timeout=10), log.read_text()[-3000:]
        cluster.stop("fast")
        time.sleep(3)  # the worker keeps trying meanwhile
        assert worker.poll() is None, log.read_text()[-3000:]
        cluster.start()
        deposit("2")
        assert receiver.wait_for(2, timeout=20), log.read_text()[-3000:]
        status, events = request(server.base, "GET", "/events", None, token)
        assert set(receiver.ids()) == {event["id"] for event in events}
        messages = {line.get("message") for line in json_lines(log)}
        assert "webhook delivery cannot reach the database" in messages
        stop_worker(worker, log)
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        if server is not None:
            server.stop()
        receiver.stop()
        cluster.destroy()


def assert_eventually_all_delivered(count: int) -> None:
    deadline = time.monotonic() + 15
    while WebhookDelivery.objects.filter(status="delivered").count() < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert WebhookDelivery.objects.filter(status="delivered").count() == count


def json_lines(log: Path) -> list[dict]:
    lines = []
    for line in log.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines
