"""The service as it is deployed: gunicorn worker processes over real HTTP.

These start their own servers, so they take a few seconds each; they are marked ``slow`` and run
in ``make test`` and CI like every other test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from wallet_service.config import BASE_DIR

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(base: str, method: str, path: str, body=None, token: str | None = None) -> tuple[int, dict | list]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class Server:
    def __init__(self, env: dict[str, str], log_path: Path, workers: int = 4):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            "PATH": os.environ["PATH"],
            "WALLET_SERVICE_SECRET_KEY": "server-test-secret-key-0123456789abcdef0123456789",
            "WALLET_SERVICE_AUTH_THROTTLE_RATE": "off",
            "WALLET_SERVICE_LOG_LEVEL": "warning",
            "WALLET_SERVICE_WORKERS": str(workers),
        } | env
        self.process: subprocess.Popen | None = None
        self.log_path = log_path

    def migrate(self) -> None:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=BASE_DIR,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> Server:
        with self.log_path.open("wb") as log:  # the child keeps its own handle
            self.process = subprocess.Popen(
                [BIN / "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{self.port}"],
                cwd=BASE_DIR,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start listening")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture
def sqlite_server(tmp_path):
    server = Server({"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}, tmp_path / "gunicorn.log")
    server.migrate()
    yield server.start()
    server.stop()


def signup(base: str, kind: str, email: str) -> str:
    profile = {"first_name": "Ana", "last_name": "García", "phone_number": "+34666666666"}
    if kind == "company":
        profile |= {"name": "Shop", "url": "https://shop.example.com"}
    status, body = request(
        base, "POST", f"/{kind}/signup", {"email": email, "password": "s3cure-Passw0rd", kind: profile}
    )
    assert status == 201, body
    return body["token"]


def walk_history(base: str, wallet: str, token: str, limit: int) -> list[dict]:
    items: list[dict] = []
    url = f"{base}/wallet/history/{wallet}?limit={limit}"
    while url:
        req = urllib.request.Request(url, headers={"Authorization": f"Token {token}"})
        with urllib.request.urlopen(req, timeout=30) as response:
            items.extend(json.loads(response.read()))
            link = response.headers.get("Link")
        url = link[1 : link.index(">")] if link else None
    return items


def race(calls) -> list:
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, call):
        barrier.wait()
        results[index] = call()

    threads = [threading.Thread(target=run, args=item) for item in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_embedded_sqlite_keeps_racing_charges_and_deposits_exact_across_worker_processes(sqlite_server):
    base = sqlite_server.base
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
    # from <= date < to, with the date of an operation as the bound (SQLite compares dates as text).
    middle = history[len(history) // 2]
    since = request(base, "GET", f"/wallet/history/{wallet}?limit=1000&from={middle['date']}", token=client)[1]
    until = request(base, "GET", f"/wallet/history/{wallet}?limit=1000&to={middle['date']}", token=client)[1]
    newer_or_same = [item["id"] for item in history if item["date"] >= middle["date"]]
    assert [item["id"] for item in since] == newer_or_same
    assert [item["id"] for item in until] == [item["id"] for item in history if item["date"] < middle["date"]]
    assert middle["id"] in newer_or_same


def test_status_is_503_and_requests_fail_cleanly_when_the_database_is_unreachable(tmp_path):
    unreachable = {"DATABASE_URL": "postgres://postgres@127.0.0.1:1/wallet_service"}
    server = Server(unreachable, tmp_path / "gunicorn.log", workers=1).start()
    try:
        status, body = request(server.base, "GET", "/status")
        assert status == 503
        assert body["code"] == "service_unavailable"
        assert body["detail"] == "The database cannot be reached."
        status, body = request(server.base, "POST", "/client/login", {"email": "a@example.com", "password": "x"})
        assert status == 503
        assert body["code"] == "service_unavailable"
    finally:
        server.stop()
