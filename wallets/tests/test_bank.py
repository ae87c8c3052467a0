"""A bank test in the spirit of Jepsen's: random deposits, charges, holds (some expiring during the run),
partial and final captures, voids and refunds (whole and partial, of charges and of captures) among
many wallets, from many threads, through the server over HTTP on PostgreSQL — alone, while workers are
SIGKILLed, and while the database is restarted. Every request carries an Idempotency-Key and is
retried with it until it gets a definitive answer, as a merchant backend would. Clients reach the server
through a proxy that loses one answer in ten after the request was executed, so retries of executed
requests happen for real and must be replayed.

Afterwards: each request moved money exactly once (or, for a 402 of a charge or hold, recorded exactly
one failed attempt) or, when refused, not at all — the ledger is exactly what the answers say;
each hold's captures add up, answer by answer, to what it captured, never beyond its amount, and it
ends captured, voided, expired or pending as its answers say; each charge's or capture's refunds add
up to what the answers say, never beyond it; every balance is what the answers, the database and the
history say; money is conserved; no wallet's ``available`` is below zero and its ``held`` is the sum
of what its pending holds still reserve (read by their companies); every executed request sent again
gets its stored answer as a replay; no key is half-stored; audit_ledger passes.

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
from datetime import datetime
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
ZERO = Decimal("0.00")
CENT = Decimal("0.01")

# The definitive answers each kind of request may get. Anything else (and a 5xx, a connection error or
# a 409 idempotency_key_in_use, which are retried) is a bug.
FINAL = {
    "deposit": {200},
    "charge": {200, 402},
    "hold": {201, 402},
    "capture": {200, 400, 409},
    "void": {200, 409},
    "refund": {200, 400, 402},
}
# The refusals that are final and their code: a capture over what remains or a refund over what is left
# (400 on amount), a hold no longer pending (409), a shortfall (402).
REFUSAL_CODES = {400: "validation_error", 402: "insufficient_funds", 409: "hold_not_pending"}


@dataclass
class Account:
    token: str
    wallet: str
    kind: str


@dataclass
class HoldSeen:
    """A hold the test placed and saw succeed (201), with the requests made on it since."""

    id: str
    intent: Intent
    short: bool  # expires within seconds, during the run
    expires_at: datetime
    remaining: Decimal  # as the latest answer said: what a capture may try to take
    open: bool = True  # no answer yet said it is captured, voided or expired
    requests: list[Intent] = field(default_factory=list)  # captures and voids


@dataclass
class Refundable:
    """A successful charge or capture into a company's wallet, which that company may refund."""

    operation: int
    kind: str
    actor: Account
    payer: str  # the wallet that paid, which a refund credits
    amount: Decimal
    left: Decimal  # as the latest answer said
    refunds: list[Intent] = field(default_factory=list)


@dataclass
class Intent:
    """One logical request, sent (and re-sent) with one Idempotency-Key."""

    key: str
    kind: str
    actor: Account
    wallet: str  # deposit: the wallet deposited into; charge, hold: the wallet charged or held
    amount: Decimal | None  # None: a capture or refund of "all that is left"
    path: str
    body: dict
    hold: HoldSeen | None = None  # capture, void
    refundable: Refundable | None = None  # refund
    final_capture: bool = False
    attempts: list = field(default_factory=list)  # HTTP status, or "connection error"
    final: int | None = None
    answer: bytes = b""  # the body of the first definitive answer
    replays: int = 0  # answers that carried Idempotent-Replayed: true

    @property
    def target(self) -> str:
        return self.wallet if self.kind == "deposit" else self.actor.wallet

    @property
    def data(self) -> dict:
        return json.loads(self.answer)

    @property
    def stored(self) -> bool:
        """Whether the answer was stored with the key: an executed request (a 2xx, or the 402 of a
        recorded failed charge or hold). Refusals store nothing."""
        return 200 <= self.final < 300 or (self.final == 402 and self.kind in ("charge", "hold"))


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
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Token {intent.actor.token}",
        "Idempotency-Key": intent.key,
        # One request per connection: the lossy proxy forwards an answer once the server closes.
        "Connection": "close",
    }
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", intent.path, json.dumps(intent.body), headers)
        response = connection.getresponse()
        return response.status, response.read(), response.getheader("Idempotent-Replayed") == "true"
    except (OSError, http.client.HTTPException):
        return None, b"", False
    finally:
        connection.close()


def get(port: int, path: str, token: str) -> tuple[int | None, dict | list | None]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Authorization": f"Token {token}"})
        response = connection.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if response.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None, None
    finally:
        connection.close()


def definitive(status: int | None, body: bytes) -> bool:
    """Whether an answer settles a request: anything but a connection error, a 5xx (the service or its
    database is down) and a 409 idempotency_key_in_use (the first attempt is still running)."""
    if status is None or status >= 500:
        return False
    if status == 409:
        try:
            return json.loads(body).get("code") != "idempotency_key_in_use"
        except ValueError:
            return False
    return True


def money(value: str) -> Decimal:
    return Decimal(value).quantize(CENT)


def some_amount(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low, high)) / 100


class Bank:
    def __init__(self, cluster: PostgresCluster, database: str, server: Server, accounts: list[Account]):
        self.cluster, self.database, self.server, self.accounts = cluster, database, server, accounts
        self.companies = [account for account in accounts if account.kind == "company"]
        # Clients talk to the server through a proxy that loses one answer in ten after the request
        # was executed: the retry with the same key must get the stored answer, not a second execution.
        self.proxy = LossyProxy(server.port, loss=0.1, seed=len(database))
        self.intents: list[Intent] = []
        self.holds: dict[str, HoldSeen] = {}
        self.refundables: dict[int, Refundable] = {}
        self.lock = threading.Lock()

    # --- The load --------------------------------------------------------------------------------

    def random_intent(self, rng: random.Random) -> Intent:
        """Deposits 22 %, charges 20 %, holds 15 % (two in five expiring within 1-3 s), captures 15 %,
        voids 6 %, refunds 22 %; a capture, void or refund with nothing to act on yet is a charge."""
        key = str(uuid.uuid4())
        roll = rng.random()
        if roll < 0.22:
            actor = rng.choice(self.accounts)
            amount = some_amount(rng, 100, 5000)
            body = {"wallet": actor.wallet, "amount": str(amount), "summary": key}
            return Intent(key, "deposit", actor, actor.wallet, amount, "/wallet/deposit", body)
        with self.lock:  # holds and refundables grow from other threads' answers
            open_holds = [hold for hold in self.holds.values() if hold.open]
            closed_holds = [hold for hold in self.holds.values() if not hold.open]
            refundables = [item for item in self.refundables.values() if item.left > 0]
        if 0.57 <= roll < 0.78 and (open_holds or closed_holds):
            # One in ten on a hold already resolved or expired, as far as the answers tell: a 409.
            hold = rng.choice(closed_holds if not open_holds or (closed_holds and rng.random() < 0.1) else open_holds)
            if roll < 0.72:
                return self.capture_intent(rng, key, hold)
            path = f"/wallet/hold/{hold.id}/void"
            return Intent(key, "void", hold.intent.actor, hold.intent.wallet, None, path, {}, hold=hold)
        if roll >= 0.78 and refundables:
            return self.refund_intent(rng, key, rng.choice(refundables))
        actor = rng.choice(self.companies)
        charged = rng.choice([account for account in self.accounts if account is not actor])
        if 0.42 <= roll < 0.57:
            amount = some_amount(rng, 100, 5000)
            body = {"wallet": charged.wallet, "amount": str(amount), "summary": key}
            if rng.random() < 0.4:
                body["expires_in"] = rng.randint(1, 3)  # expires during the run
            return Intent(key, "hold", actor, charged.wallet, amount, "/wallet/hold", body)
        amount = some_amount(rng, 100, 6000)
        body = {"wallet": charged.wallet, "amount": str(amount), "summary": key}
        return Intent(key, "charge", actor, charged.wallet, amount, "/wallet/charge", body)

    def capture_intent(self, rng: random.Random, key: str, hold: HoldSeen) -> Intent:
        final = rng.random() < 0.5
        body: dict = {"final": final}
        amount = None
        if rng.random() < 0.7:
            # Mostly within what remains; one in five over it (a 400, nothing moves) when something does.
            ceiling = max(int(hold.remaining * 100 * (Decimal("1.25") if rng.random() < 0.2 else Decimal("0.6"))), 1)
            amount = Decimal(rng.randint(1, ceiling)) / 100
            body["amount"] = str(amount)
        intent = Intent(key, "capture", hold.intent.actor, hold.intent.wallet, amount, "", body, hold=hold)
        intent.path, intent.final_capture = f"/wallet/hold/{hold.id}/capture", final
        return intent

    def refund_intent(self, rng: random.Random, key: str, item: Refundable) -> Intent:
        body: dict = {"operation": item.operation, "summary": key}
        amount = None
        if rng.random() < 0.6:
            amount = (
                Decimal(
                    rng.randint(
                        1, max(int(item.left * 100 * (Decimal("1.2") if rng.random() < 0.2 else Decimal("0.7"))), 1)
                    )
                )
                / 100
            )
            body["amount"] = str(amount)
        return Intent(key, "refund", item.actor, item.payer, amount, "/wallet/refund", body, refundable=item)

    def learn(self, intent: Intent) -> None:
        """What a definitive answer tells the next requests: holds to capture or void, what they still
        reserve, charges and captures to refund and what is left of them. Never what the checks use."""
        if intent.final not in (200, 201):
            if intent.kind in ("capture", "void") and intent.final == 409:
                intent.hold.open = False
            return
        data = intent.data
        if intent.kind == "charge":
            self.refundables[data["operation"]] = Refundable(
                data["operation"], "charge", intent.actor, intent.wallet, intent.amount, intent.amount
            )
        elif intent.kind == "hold":
            short = "expires_in" in intent.body
            expires_at = datetime.fromisoformat(data["expires_at"].replace("Z", "+00:00"))
            self.holds[data["hold"]] = HoldSeen(data["hold"], intent, short, expires_at, intent.amount)
        elif intent.kind in ("capture", "void"):
            intent.hold.remaining = money(data["remaining"])
            intent.hold.open = data["status"] == "pending"
        elif intent.kind == "refund":
            intent.refundable.left = min(intent.refundable.left, intent.refundable.amount - money(data["refunded"]))

    def learn_captures(self, company: Account) -> None:
        """Captures have no operation id in their answer: read the company's latest ones from its history
        (straight from gunicorn), to refund them. Best effort: the database may be down."""
        status, items = get(self.server.port, f"/wallet/history/{company.wallet}?limit=20", company.token)
        if status != 200:
            return
        with self.lock:
            for item in items:
                hold = self.holds.get(item.get("hold"))
                # The company's own captures, not those of another company's hold on its wallet.
                if (
                    item["type"] == "capture"
                    and hold
                    and hold.intent.actor is company
                    and item["id"] not in self.refundables
                ):
                    amount = money(item["amount"])
                    self.refundables[item["id"]] = Refundable(
                        item["id"], "capture", company, hold.intent.wallet, amount, amount
                    )

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
                    if intent.hold is not None:
                        intent.hold.requests.append(intent)
                    if intent.refundable is not None:
                        intent.refundable.refunds.append(intent)
                give_up = time.monotonic() + RETRY_FOR
                while time.monotonic() < give_up:
                    status, body, replayed = send(self.proxy.port, intent)
                    intent.attempts.append(status or "connection error")
                    intent.replays += replayed
                    if definitive(status, body):
                        intent.final, intent.answer = status, body
                        break
                    time.sleep(rng.uniform(0.05, 0.2))  # the service or its database is down: retry, same key
                if intent.final is not None:
                    with self.lock:
                        self.learn(intent)
                    if intent.kind == "capture" and intent.final == 200:
                        self.learn_captures(intent.actor)

        threads = [threading.Thread(target=worker, args=(index,)) for index in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(seconds + 60 + RETRY_FOR + 30)
        return time.monotonic() - started

    # --- The checks ------------------------------------------------------------------------------

    def capture_chain(self, hold: HoldSeen) -> list[tuple[Intent, Decimal]]:
        """The hold's acknowledged captures in the order they happened, each with the amount it took.

        Each answer shows the hold's ``captured`` after that capture (captures of one hold serialise),
        so ordered by it, each capture took the step from the one before: exactly its ``amount`` when
        it named one, what remained when it did not (possibly nothing). A capture executed but never
        acknowledged, or executed twice, leaves a step no answer explains — or a sum the ledger does
        not match."""
        captures = [intent for intent in hold.requests if intent.kind == "capture" and intent.final == 200]
        captures.sort(key=lambda intent: (money(intent.data["captured"]), intent.amount is None))
        chain, before = [], ZERO
        for intent in captures:
            captured = money(intent.data["captured"])
            took = captured - before
            if intent.amount is not None:
                assert took == intent.amount, (hold.id, [(i.amount, i.data["captured"]) for i in captures])
            assert took >= 0
            chain.append((intent, took))
            before = captured
        assert before <= hold.intent.amount, (hold.id, before)  # never captured beyond the hold
        return chain

    def refund_chain(self, item: Refundable) -> list[Intent]:
        """The acknowledged refunds of a charge or capture, in order: each answer's ``refunded`` is the
        one before plus its ``amount``, a default refund took all that was left, never beyond it."""
        refunds = [intent for intent in item.refunds if intent.final == 200]
        refunds.sort(key=lambda intent: money(intent.data["refunded"]))
        before = ZERO
        for intent in refunds:
            amount, refunded = money(intent.data["amount"]), money(intent.data["refunded"])
            assert refunded == before + amount and amount > 0, (item.operation, [i.data for i in refunds])
            assert intent.amount in (None, amount)
            if intent.amount is None:
                assert refunded == item.amount  # all that was left
            before = refunded
        assert before <= item.amount, (item.operation, before, item.amount)  # never beyond the charge
        return refunds

    def expected_ledger(self) -> tuple[Counter, dict[str, Decimal]]:
        """The operations the answers say the ledger holds — (summary, kind, success, amount, source,
        target, hold, refund_of) — and the balances they leave."""
        rows: Counter = Counter()
        balances = {account.wallet: ZERO for account in self.accounts}

        def move(source: str | None, target: str, amount: Decimal) -> None:
            if source is not None:
                balances[source] -= amount
            balances[target] += amount

        for intent in self.intents:
            if intent.kind == "deposit":
                rows[(intent.key, "deposit", True, intent.amount, None, intent.wallet, None, None)] += 1
                move(None, intent.wallet, intent.amount)
            elif intent.kind in ("charge", "hold"):
                ok = intent.final in (200, 201)
                hold_id = intent.data["hold"] if intent.kind == "hold" and ok else None
                rows[(intent.key, intent.kind, ok, intent.amount, intent.wallet, intent.target, hold_id, None)] += 1
                if intent.kind == "charge" and ok:
                    move(intent.wallet, intent.target, intent.amount)
            elif intent.kind == "refund" and intent.final == 200:
                amount, item = money(intent.data["amount"]), intent.refundable
                rows[(intent.key, "refund", True, amount, intent.actor.wallet, item.payer, None, item.operation)] += 1
                move(intent.actor.wallet, item.payer, amount)
        for hold in self.holds.values():
            for _intent, took in self.capture_chain(hold):
                if took:
                    held, company = hold.intent.wallet, hold.intent.actor.wallet
                    rows[(hold.intent.key, "capture", True, took, held, company, hold.id, None)] += 1
                    move(held, company, took)
        return rows, balances

    def check(self) -> Counter:
        """Every invariant of the bank; returns the count of attempts by outcome."""
        attempts = Counter(attempt for intent in self.intents for attempt in intent.attempts)
        unsettled = [intent for intent in self.intents if intent.final not in FINAL[intent.kind]]
        assert not unsettled, [(intent.kind, intent.attempts, intent.answer[:200]) for intent in unsettled[:5]]
        assert set(attempts) <= {200, 201, 400, 402, 409, 502, 503, 504, "connection error"}, attempts
        for intent in self.intents:
            if intent.final in REFUSAL_CODES:
                assert intent.data["code"] == REFUSAL_CODES[intent.final], (intent.kind, intent.answer)
            if intent.final == 400:  # a capture over what remains, a refund over what is left
                assert list(intent.data["errors"]) == ["amount"], intent.answer
        self.wait_for_short_holds()

        # The ledger: exactly the operations the answers say, no more (nothing executed twice or
        # unacknowledged), no less (nothing acknowledged lost).
        found = self.cluster.query(
            self.database,
            "SELECT o.summary, o.kind, o.success, o.amount, s.token, t.token, h.public_id, o.refund_of_id, o.id "
            "FROM wallets_operation o LEFT JOIN wallets_wallet s ON s.id = o.source_id "
            "JOIN wallets_wallet t ON t.id = o.target_id LEFT JOIN wallets_hold h ON h.id = o.hold_id",
        )
        expected_rows, expected = self.expected_ledger()
        rows = Counter(row[:-1] for row in found)
        assert rows == expected_rows, (
            list((rows - expected_rows).items())[:5],
            list((expected_rows - rows).items())[:5],
        )
        ids = {(row[0], row[1]): row[-1] for row in found if row[1] != "capture"}
        for intent in self.intents:  # the operation ids the answers gave are the ledger's
            if intent.kind == "charge" or (intent.kind == "hold" and intent.final == 402):
                operation = intent.data["operation"]
                assert operation == ids[(intent.key, intent.kind)]
            elif intent.kind == "refund" and intent.final == 200:
                assert intent.data["refund"] == ids[(intent.key, "refund")]
        for item in self.refundables.values():
            self.refund_chain(item)

        # Holds: each as its answers say, read by its company; captured what its captures add up to.
        bodies = self.check_holds()

        # Balances: what the clients' answers say, what the database holds, what the history says.
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
            # held: what the pending holds on the wallet still reserve; available never below zero.
            status, info = get(self.server.port, f"/wallet/info/{account.wallet}", account.token)
            assert status == 200
            held = sum((money(body["remaining"]) for body in bodies if body["wallet"] == account.wallet), ZERO)
            assert info == {
                "wallet": account.wallet,
                "balance": str(balances[account.wallet]),
                "held": str(held),
                "available": str(balances[account.wallet] - held),
            }
            assert balances[account.wallet] - held >= 0
            history = walk_history(self.server.base, account.wallet, account.token, limit=250)
            from_history = sum(
                (Decimal(item["amount"]) * (1 if item["target__token"] == account.wallet else -1))
                for item in history
                if item["success"] and item["type"] != "hold"  # a hold item moves no money
            )
            assert from_history == balances[account.wallet]
            involved = Counter((row[0], row[1], row[2], row[3]) for row in found if account.wallet in (row[4], row[5]))
            listed = Counter(
                (item["summary"], item["type"], item["success"], money(item["amount"])) for item in history
            )
            assert listed == involved

        # Every executed request sent again with its key: the same answer, marked as a replay, and
        # nothing moves. (A refusal stored nothing: sent again, it could now execute.)
        stored = [intent for intent in self.intents if intent.stored]
        for intent in stored:
            status, body, replayed = send(self.server.port, intent)
            assert (status, body, replayed) == (intent.final, intent.answer, True), intent.key
        assert self.cluster.query(self.database, "SELECT count(*) FROM wallets_operation") == [(len(found),)]
        replays = sum(intent.replays for intent in self.intents)
        assert self.proxy.lost > 0 and replays > 0, "no answer was lost: the replay path was not exercised"

        # Keys: one completed record per executed request, none half-stored, none for a refusal.
        keys = self.cluster.query(
            self.database,
            "SELECT count(*), count(*) FILTER (WHERE status_code IS NULL) FROM idempotency_idempotencykey",
        )
        assert keys == [(len(stored), 0)]
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

    def wait_for_short_holds(self) -> None:
        """Until every short hold is past its expires_at: from then on nothing changes while the checks
        read (a default hold lasts a week)."""
        short = [hold.expires_at.timestamp() for hold in self.holds.values() if hold.short]
        if short:
            time.sleep(max(0.0, max(short) + 0.2 - time.time()))

    def check_holds(self) -> list[dict]:
        """Each hold as its company reads it: status, captured and remaining as its answers say."""
        in_db = self.cluster.query(
            self.database, "SELECT count(*), count(*) FILTER (WHERE status = 'pending') FROM wallets_hold"
        )
        assert in_db[0][0] == len(self.holds)
        bodies = []
        for hold in self.holds.values():
            status, body = get(self.server.port, f"/wallet/hold/{hold.id}", hold.intent.actor.token)
            assert status == 200, (status, hold.id)
            chain = self.capture_chain(hold)
            captured = sum((took for _, took in chain), ZERO)
            acked = [intent for intent in hold.requests if intent.final == 200]
            finals = [intent for intent in acked if intent.kind == "void" or intent.final_capture]
            assert len(finals) <= 1, [(intent.kind, intent.key) for intent in finals]  # resolved once
            if finals and finals[0].kind == "capture":
                expected_status = "captured"
                assert finals[0] is chain[-1][0] or chain[-1][1] == 0  # nothing captured after the final one
            elif finals:
                expected_status = "voided"
            else:
                expected_status = "expired" if hold.short else "pending"
            amount = hold.intent.amount
            remaining = amount - captured if expected_status == "pending" else ZERO
            assert (body["status"], money(body["captured"]), money(body["remaining"]), money(body["amount"])) == (
                expected_status,
                captured,
                remaining,
                amount,
            ), hold.id
            assert (body["wallet"], body["merchant_wallet"]) == (hold.intent.wallet, hold.intent.actor.wallet)
            # A request refused as no longer pending came after the hold was resolved or expired.
            refused = [intent for intent in hold.requests if intent.final == 409]
            assert not refused or expected_status != "pending" or hold.short, hold.id
            bodies.append(body)
        return [body for body in bodies if body["status"] == "pending"]

    def report(self, name: str, seconds: float, attempts: Counter, faults: str) -> Counter:
        outcomes = Counter(f"{intent.kind} {intent.final}" for intent in self.intents)
        retried = sum(1 for intent in self.intents if len(intent.attempts) > 1)
        replays = sum(intent.replays for intent in self.intents)
        statuses = Counter(body["status"] for body in self.hold_statuses())
        print(
            f"\n[bank:{name}] {len(self.intents)} requests in {seconds:.1f} s: {dict(sorted(outcomes.items()))}; "
            f"holds at the end {dict(statuses)}; {retried} retried; attempts {dict(attempts)}; {self.proxy.lost} "
            f"answers lost by the proxy, {replays} replays during the load; faults: {faults}"
        )
        return outcomes

    def hold_statuses(self) -> list[dict]:
        return [get(self.server.port, f"/wallet/hold/{h.id}", h.intent.actor.token)[1] for h in self.holds.values()]


def worker_pids(server: Server) -> list[int]:
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    return [int(pid) for pid in children.read_text().split()]


def test_bank_money_is_conserved_under_concurrent_load(bank):
    seconds = bank.run(seconds=6, seed=1)
    attempts = bank.check()
    assert len(bank.intents) >= 150 and attempts[200] > 50, attempts  # a real load, not a handful of requests
    outcomes = bank.report("steady", seconds, attempts, "none")
    # Every kind of request ran, and every outcome a merchant meets: partial and final captures, voids,
    # holds that expired, refunds of charges and of captures, and refusals of each.
    for outcome in ("hold 201", "capture 200", "void 200", "refund 200", "charge 402", "capture 409"):
        assert outcomes[outcome] > 0, outcomes
    captures = [intent for intent in bank.intents if intent.kind == "capture" and intent.final == 200]
    assert {intent.final_capture for intent in captures} == {True, False}
    assert {"charge", "capture"} <= {
        r.kind for r in bank.refundables.values() if any(i.final == 200 for i in r.refunds)
    }
    assert "expired" in {body["status"] for body in bank.hold_statuses()}


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
