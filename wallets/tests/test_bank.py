"""A bank test in the spirit of Jepsen's: random deposits and charges among many wallets, from many
threads, through the server over HTTP on PostgreSQL — alone, while workers are SIGKILLed, and while
the database is restarted. Every request carries an Idempotency-Key and is retried with it until it
gets a definitive answer, as a merchant backend would. Clients reach the server through a proxy that
loses one answer in ten after the request was executed, so retries of executed requests happen
for real and must be replayed.

Afterwards: each request moved money exactly once (or, for a 402, recorded exactly one failed
attempt); every balance is what the answers the clients received say it must be, and what its
history says; money is conserved; every request sent again gets its stored answer as a replay; no
key is half-stored; audit_ledger passes.

The database is a throwaway cluster on a spare port (wallet_service.tests.servers.PostgresCluster),
never the shared server, so that the fault test can stop and restart it.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest

from wallet_service.config import BASE_DIR
from wallet_service.tests.servers import LossyProxy, PostgresCluster, Server, request, signup, walk_history

pytestmark = pytest.mark.slow

CLIENTS = 8
COMPANIES = 4
THREADS = 12
TEMPLATE = "bank_template"
RETRY_FOR = 60.0  # seconds a request is retried with its key before the test gives up on it


@dataclass
class Account:
    token: str
    wallet: str
    kind: str


@dataclass
class Intent:
    """One logical request: a deposit or a charge, sent (and re-sent) with one Idempotency-Key."""

    key: str
    kind: str
    actor: Account
    wallet: str  # the wallet deposited into, or the wallet charged
    amount: Decimal
    attempts: list = field(default_factory=list)  # HTTP status, or "connection error"
    final: int | None = None
    answer: bytes = b""  # the body of the first definitive answer
    replays: int = 0  # answers that carried Idempotent-Replayed: true

    @property
    def target(self) -> str:
        return self.wallet if self.kind == "deposit" else self.actor.wallet


@pytest.fixture(scope="module")
def cluster():
    cluster = PostgresCluster().init()
    cluster.query("postgres", f"CREATE DATABASE {TEMPLATE}")
    Server({"DATABASE_URL": cluster.url(TEMPLATE)}, cluster.dir / "migrate.log").migrate()
    yield cluster
    cluster.destroy()


_databases = iter(range(1, 1000))


@pytest.fixture
def bank(cluster, tmp_path):
    """A fresh migrated database on the cluster, a server serving it, and accounts made over HTTP."""
    database = f"bank_{next(_databases)}"
    cluster.query("postgres", f"CREATE DATABASE {database} TEMPLATE {TEMPLATE}")
    server = Server({"DATABASE_URL": cluster.url(database)}, tmp_path / "server.log", workers=4).start()
    accounts = []
    for kind, count in (("client", CLIENTS), ("company", COMPANIES)):
        for index in range(count):
            token = signup(server.base, kind, f"{kind}{index}@example.com")
            status, body = request(server.base, "POST", "/wallet/create", {}, token)
            assert status == 201, body
            accounts.append(Account(token, body["wallet"], kind))
    bank = Bank(cluster, database, server, accounts)
    yield bank
    bank.proxy.close()
    server.stop()


def send(port: int, intent: Intent) -> tuple[int | None, bytes, bool]:
    """One attempt: (status or None on a connection error, body, whether it was a replay)."""
    body = {"wallet": intent.wallet, "amount": str(intent.amount), "summary": intent.key}
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Token {intent.actor.token}",
        "Idempotency-Key": intent.key,
        # One request per connection: the lossy proxy forwards an answer once the server closes.
        "Connection": "close",
    }
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", f"/wallet/{intent.kind}", json.dumps(body), headers)
        response = connection.getresponse()
        return response.status, response.read(), response.getheader("Idempotent-Replayed") == "true"
    except (OSError, http.client.HTTPException):
        return None, b"", False
    finally:
        connection.close()


class Bank:
    def __init__(self, cluster: PostgresCluster, database: str, server: Server, accounts: list[Account]):
        self.cluster, self.database, self.server, self.accounts = cluster, database, server, accounts
        # Clients talk to the server through a proxy that loses one answer in ten after the request
        # was executed: the retry with the same key must get the stored answer, not a second execution.
        self.proxy = LossyProxy(server.port, loss=0.1, seed=len(database))
        self.intents: list[Intent] = []
        self.lock = threading.Lock()

    def random_intent(self, rng: random.Random) -> Intent:
        key = str(uuid.uuid4())
        if rng.random() < 0.35:
            actor = rng.choice(self.accounts)
            return Intent(key, "deposit", actor, actor.wallet, Decimal(rng.randint(100, 5000)) / 100)
        actor = rng.choice([account for account in self.accounts if account.kind == "company"])
        charged = rng.choice([account for account in self.accounts if account is not actor])
        return Intent(key, "charge", actor, charged.wallet, Decimal(rng.randint(100, 6000)) / 100)

    def run(self, seconds: float, seed: int, at_least: int = 150) -> float:
        """Load from THREADS threads for ``seconds``, and on until ``at_least`` requests were sent (a
        slow machine still gets a real load; at most a minute more). Returns the time until every
        request settled."""
        started = time.monotonic()
        stop_at, hard_stop = started + seconds, started + seconds + 60

        def more() -> bool:
            now = time.monotonic()
            return now < hard_stop and (now < stop_at or len(self.intents) < at_least)

        def worker(index: int) -> None:
            rng = random.Random(seed * 1000 + index)
            while more():
                intent = self.random_intent(rng)
                with self.lock:
                    self.intents.append(intent)
                give_up = time.monotonic() + RETRY_FOR
                while time.monotonic() < give_up:
                    status, body, replayed = send(self.proxy.port, intent)
                    intent.attempts.append(status or "connection error")
                    intent.replays += replayed
                    if status not in (None, 409) and status < 500:
                        intent.final, intent.answer = status, body
                        break
                    time.sleep(rng.uniform(0.05, 0.2))  # the service or its database is down: retry, same key

        threads = [threading.Thread(target=worker, args=(index,)) for index in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(seconds + 60 + RETRY_FOR + 30)
        return time.monotonic() - started

    def check(self) -> Counter:
        """Every invariant of the bank; returns the count of attempts by outcome."""
        attempts = Counter(attempt for intent in self.intents for attempt in intent.attempts)
        unsettled = [intent for intent in self.intents if intent.final not in (200, 402)]
        assert not unsettled, [(intent.kind, intent.attempts) for intent in unsettled[:5]]
        # A 402 is only ever a charge; anything but 200/402/409/5xx/connection errors is a bug.
        assert all(intent.kind == "charge" for intent in self.intents if intent.final == 402)
        assert set(attempts) <= {200, 402, 409, 502, 503, 504, "connection error"}, attempts

        # The ledger: one operation per request, carrying the request's key as its summary.
        rows = self.cluster.query(
            self.database,
            "SELECT o.summary, o.kind, o.success, o.amount, s.token, t.token FROM wallets_operation o "
            "LEFT JOIN wallets_wallet s ON s.id = o.source_id JOIN wallets_wallet t ON t.id = o.target_id",
        )
        by_key = Counter(row[0] for row in rows)
        assert len(rows) == len(self.intents), (len(rows), len(self.intents))
        assert all(by_key[intent.key] == 1 for intent in self.intents), "a request executed twice or never"
        operations = {row[0]: row[1:] for row in rows}
        for intent in self.intents:
            kind, success, amount, source, target = operations[intent.key]
            expected_source = None if intent.kind == "deposit" else intent.wallet
            assert (kind, success, amount, source, target) == (
                intent.kind,
                intent.final == 200,
                intent.amount,
                expected_source,
                intent.target,
            )

        # Balances: what the clients' answers say, what the database holds, what the history says.
        expected = {account.wallet: Decimal("0.00") for account in self.accounts}
        for intent in self.intents:
            if intent.final == 200:
                expected[intent.target] += intent.amount
                if intent.kind == "charge":
                    expected[intent.wallet] -= intent.amount
        balances = dict(
            self.cluster.query(
                self.database,
                "SELECT w.token, w.balance + COALESCE((SELECT SUM(p.amount) FROM wallets_pendingcredit p "
                "WHERE p.wallet_id = w.id), 0) FROM wallets_wallet w",
            )
        )
        assert balances == expected
        assert min(balances.values()) >= 0
        deposited = sum(intent.amount for intent in self.intents if intent.kind == "deposit")
        assert sum(balances.values()) == deposited
        for account in self.accounts:
            history = walk_history(self.server.base, account.wallet, account.token, limit=250)
            from_history = sum(
                (Decimal(item["amount"]) * (1 if item["target__token"] == account.wallet else -1))
                for item in history
                if item["success"]
            )
            assert from_history == balances[account.wallet]
            involved = {intent.key for intent in self.intents if account.wallet in (intent.wallet, intent.target)}
            assert sorted(item["summary"] for item in history) == sorted(involved)

        # Every request sent again with its key: the same answer, marked as a replay, and nothing moves.
        for intent in self.intents:
            status, body, replayed = send(self.server.port, intent)
            assert (status, body, replayed) == (intent.final, intent.answer, True), intent.key
        assert self.cluster.query(self.database, "SELECT count(*) FROM wallets_operation") == [(len(self.intents),)]
        replays = sum(intent.replays for intent in self.intents)
        assert self.proxy.lost > 0 and replays > 0, "no answer was lost: the replay path was not exercised"

        # Keys: one completed record per request, none half-stored.
        keys = self.cluster.query(
            self.database,
            "SELECT count(*), count(*) FILTER (WHERE status_code IS NULL) FROM idempotency_idempotencykey",
        )
        assert keys == [(len(self.intents), 0)]
        audit = subprocess.run(
            [sys.executable, "manage.py", "audit_ledger"],
            cwd=BASE_DIR,
            env=self.server.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert "Ledger audit passed." in audit.stdout
        return attempts

    def report(self, name: str, seconds: float, attempts: Counter, faults: str) -> None:
        outcomes = Counter(intent.final for intent in self.intents)
        retried = sum(1 for intent in self.intents if len(intent.attempts) > 1)
        replays = sum(intent.replays for intent in self.intents)
        print(
            f"\n[bank:{name}] {len(self.intents)} requests ({outcomes[200]} × 200, {outcomes[402]} × 402) "
            f"in {seconds:.1f} s; {retried} retried; attempts {dict(attempts)}; {self.proxy.lost} answers lost "
            f"by the proxy, {replays} replays during the load; faults: {faults}"
        )


def worker_pids(server: Server) -> list[int]:
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    return [int(pid) for pid in children.read_text().split()]


def test_bank_money_is_conserved_under_concurrent_load(bank):
    seconds = bank.run(seconds=6, seed=1)
    attempts = bank.check()
    assert len(bank.intents) >= 150 and attempts[200] > 50, attempts  # a real load, not a handful of requests
    bank.report("steady", seconds, attempts, "none")


def test_bank_survives_server_workers_killed_mid_load(bank):
    kills = []
    done = threading.Event()

    def killer():
        rng = random.Random(7)
        time.sleep(1)
        while not done.wait(rng.uniform(0.4, 0.9)):
            pids = worker_pids(bank.server)
            if pids:
                victim = rng.choice(pids)
                os.kill(victim, signal.SIGKILL)
                kills.append(victim)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        seconds = bank.run(seconds=8, seed=2)
    finally:
        done.set()
        thread.join()
    attempts = bank.check()
    assert len(kills) >= 5
    assert attempts["connection error"] > 0, "no request was caught by a kill: the test proves nothing"
    bank.report("sigkill", seconds, attempts, f"{len(kills)} workers SIGKILLed")


def test_bank_survives_the_database_restarting_mid_load(bank):
    restarts = []

    def restarter():
        for mode in ("fast", "immediate", "immediate"):
            time.sleep(1.5)
            bank.cluster.stop(mode)
            time.sleep(0.5)
            bank.cluster.start()
            restarts.append(mode)

    thread = threading.Thread(target=restarter)
    thread.start()
    try:
        seconds = bank.run(seconds=8, seed=3)
    finally:
        thread.join()
    attempts = bank.check()
    assert restarts == ["fast", "immediate", "immediate"]
    assert attempts[503] > 0, "no request met the outage: the test proves nothing"
    bank.report("db-restart", seconds, attempts, f"database restarted {len(restarts)}× ({', '.join(restarts)})")
