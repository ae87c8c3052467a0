"""The webhook worker alone, measured: what one delivery costs the worker, its database connections and
a receiver, and what it costs the worker to pass over events that nobody subscribed to.

    .venv/bin/python bench/webhooks.py [--skipped 200000] [--deliveries 20000] [--rate 0] [--close]

Makes a throwaway database WEBHOOKS_BENCH_DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/wallet_service_bench_webhooks; the name must contain "bench": it is
dropped), migrated with manage.py; 50 owners with an endpoint each (every event type) pointing at
bench/receiver.py on 127.0.0.1 (answering 204 at once, connections kept open; one connection per request
with ``--close``), and 1,000 owners without one. Then, with
``manage.py worker`` running (as `make run` starts it, `WALLET_SERVICE_WEBHOOK_ALLOW_PRIVATE=True`):

1. idle: 5 s with nothing to do (the cost of polling);
2. skipped: ``--skipped`` events of owners without endpoints, inserted 1,000 per transaction, then the
   time until the fan-out's position has passed them;
3. delivered: ``--deliveries`` events of subscribed owners, each beside one event of an owner without an
   endpoint (as a charge writes one for the merchant and one for the client): all at once, or
   ``--rate`` pairs per second; then the time until the receiver has every one and the database says
   delivered.

For each phase: wall time and CPU seconds of the worker process, of the PostgreSQL backends of its
connections (found by their client ports) and of the receiver; per delivery (or per 1,000 skipped
events) in milliseconds; the delay from an event's ``created`` to its arrival (p50, p99, max). The
machine is shared: CPU time per unit, not wall time, is the measure that holds up. A JSON summary is
printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from urllib.request import urlopen

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from run import TICK, all_pids, local_ports, proc_stat  # noqa: E402

DATABASE_URL = (
    os.environ.get("WEBHOOKS_BENCH_DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/wallet_service_bench_webhooks"
)
SECRET_KEY = os.environ.get("WALLET_SERVICE_SECRET_KEY") or "insecure-bench-only-secret-key-0123456789abcdef"
LOG = ROOT / "var" / "bench" / "webhooks-worker.log"
SUBSCRIBED = 50
UNSUBSCRIBED = 1000
DATA = json.dumps({"id": "op_bench", "type": "charge", "amount": "0.01", "summary": "bench"})


def say(message: str) -> None:
    print(f"[webhooks {time.strftime('%H:%M:%S')}] {message}", flush=True)


def receiver_state(port: int) -> dict:
    with urlopen(f"http://127.0.0.1:{port}/state", timeout=10) as response:
        return json.loads(response.read())


# --- Measuring -----------------------------------------------------------------------------------


def ticks(pid: int) -> int:
    return (proc_stat(pid) or (0, 0))[1]


class Meter:
    """CPU ticks of the worker, of its database backends and of the receiver since ``start()``."""

    def __init__(self, dbname: str, worker: int, receiver: int):
        self.dbname, self.worker, self.receiver = dbname, worker, receiver
        self.backends: dict[int, int] = {}  # pid -> ticks at the start (0 if it started since)
        self.last: dict[int, int] = {}

    def backend_pids(self) -> set[int]:
        ports = local_ports(self.worker)
        found = set()
        for pid in all_pids():
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            mine = title.startswith("postgres: ") and f" {self.dbname} " in title
            if mine and any(f"({port})" in title for port in ports):
                found.add(pid)
        return found

    def sample(self) -> None:
        for pid in self.backend_pids():
            value = ticks(pid)
            self.backends.setdefault(pid, 0 if self.started else value)
            self.last[pid] = value

    def start(self) -> None:
        self.started = False
        self.backends, self.last = {}, {}
        self.sample()
        self.started = True
        self.worker_start, self.receiver_start = ticks(self.worker), ticks(self.receiver)
        self.wall_start = time.monotonic()

    def stop(self) -> dict:
        self.sample()
        return {
            "wall_s": round(time.monotonic() - self.wall_start, 2),
            "worker_s": (ticks(self.worker) - self.worker_start) / TICK,
            "database_s": sum(self.last[pid] - start for pid, start in self.backends.items()) / TICK,
            "receiver_s": (ticks(self.receiver) - self.receiver_start) / TICK,
        }

    def wait(self, done, limit: float) -> bool:
        """Sample every 0.2 s (backends that come and go are counted) until ``done()`` or ``limit`` s."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            self.sample()
            if done():
                return True
            time.sleep(0.2)
        return done()


# --- Set-up --------------------------------------------------------------------------------------


def admin_url(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


def set_up(env: dict[str, str], receiver_port: int) -> tuple[list[int], list[int]]:
    dbname = urlsplit(DATABASE_URL).path.lstrip("/")
    if "bench" not in dbname:
        sys.exit(f"WEBHOOKS_BENCH_DATABASE_URL names {dbname!r}: it is dropped, so its name must contain 'bench'.")
    with psycopg.connect(admin_url(DATABASE_URL), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {dbname}")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    code = f"""
import django, json
django.setup()
from accounts.models import User
from events.webhooks.services import webhook_create
subscribed = []
for index in range({SUBSCRIBED}):
    user = User.objects.create_user(f"merchant{{index}}@bench.example.com", None, kind="company")
    webhook_create(owner=user, url="http://127.0.0.1:{receiver_port}/hooks", event_types=None)
    subscribed.append(user.pk)
others = [User.objects.create_user(f"client{{index}}@bench.example.com", None, kind="client").pk
          for index in range({UNSUBSCRIBED})]
print(json.dumps([subscribed, others]))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    subscribed, others = json.loads(out.stdout.strip().splitlines()[-1])
    return subscribed, others


INSERT = """
INSERT INTO events_event (public_id, owner_id, type, data)
SELECT 'evt_' || md5(random()::text), (%(owners)s::bigint[])[1 + (n %% cardinality(%(owners)s::bigint[]))],
       'charge.succeeded', %(data)s::jsonb
  FROM generate_series(1, %(count)s) n
"""


COMMITS = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"


def insert_events(conn, owners: list[int], count: int, per_transaction: int = 1000) -> None:
    while count > 0:
        with conn.transaction():
            conn.execute(INSERT, {"owners": owners, "count": min(count, per_transaction), "data": DATA})
        count -= per_transaction


def insert_pairs(conn, subscribed: list[int], others: list[int], count: int, rate: float) -> None:
    """``count`` transactions of two events, one for a subscribed owner and one for another: at once (in
    transactions of 500 pairs), or ``rate`` transactions per second."""
    if not rate:
        while count > 0:
            with conn.transaction():
                conn.execute(INSERT, {"owners": subscribed, "count": min(count, 500), "data": DATA})
                conn.execute(INSERT, {"owners": others, "count": min(count, 500), "data": DATA})
            count -= 500
        return
    started = time.monotonic()
    for index in range(count):
        with conn.transaction():
            conn.execute(INSERT, {"owners": [subscribed[index % len(subscribed)]], "count": 1, "data": DATA})
            conn.execute(INSERT, {"owners": [others[index % len(others)]], "count": 1, "data": DATA})
        pause = started + (index + 1) / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)


# --- The run -------------------------------------------------------------------------------------


def per_unit(measured: dict, units: int, scale: float = 1000.0) -> dict:
    return {
        key.removesuffix("_s"): round(measured[key] * scale / units, 3) if units else None
        for key in ("worker_s", "database_s", "receiver_s")
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skipped", type=int, default=200_000)
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=0.0, help="pairs per second; 0: all at once")
    parser.add_argument("--close", action="store_true", help="the receiver closes each connection after answering")
    args = parser.parse_args()
    env = {key: value for key, value in os.environ.items() if not key.startswith("WALLET_SERVICE_")}
    env |= {
        "DATABASE_URL": DATABASE_URL,
        "WALLET_SERVICE_SECRET_KEY": SECRET_KEY,
        "WALLET_SERVICE_WEBHOOK_ALLOW_PRIVATE": "True",
        "WALLET_SERVICE_LOG_LEVEL": "info",
        "DJANGO_SETTINGS_MODULE": "wallet_service.settings",
    }
    receiver = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "receiver.py"), *(["--close"] if args.close else [])],
        stdout=subprocess.PIPE,
        text=True,
    )
    worker = None
    try:
        port = int(receiver.stdout.readline())
        say(f"database {DATABASE_URL} (dropped and re-created); receiver on 127.0.0.1:{port}")
        subscribed, others = set_up(env, port)
        dbname = urlsplit(DATABASE_URL).path.lstrip("/")
        LOG.parent.mkdir(parents=True, exist_ok=True)
        with LOG.open("wb") as log:  # a JSON line per attempt, as in production
            worker = subprocess.Popen([sys.executable, "manage.py", "worker"], cwd=ROOT, env=env, stderr=log)
        time.sleep(3)  # started, its jobs run once
        meter = Meter(dbname, worker.pid, receiver.pid)
        summary = {"skipped_events": args.skipped, "deliveries": args.deliveries, "rate": args.rate}
        summary["receiver_closes_connections"] = args.close
        with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
            meter.start()
            meter.wait(lambda: False, 5)
            idle = meter.stop()
            summary["idle"] = idle
            say(f"idle 5 s: worker {idle['worker_s']:.2f} s, its database {idle['database_s']:.2f} s of CPU")

            meter.start()  # the worker fans out while they are inserted
            insert_events(conn, others, args.skipped)
            (last,) = conn.execute("SELECT max(id) FROM events_event").fetchone()
            passed = meter.wait(
                lambda: conn.execute("SELECT event_id >= %s FROM events_webhookfanout", [last]).fetchone()[0], 600
            )
            skipped = meter.stop() | {"passed": passed}
            summary["skipped"] = skipped | {"ms_per_1000_events": per_unit(skipped, args.skipped, 1e6)}
            say(f"skipped {args.skipped} events: {skipped} per 1,000: {summary['skipped']['ms_per_1000_events']}")

            commits = conn.execute(COMMITS).fetchone()[0]
            meter.start()
            feeder = threading.Thread(
                target=lambda: insert_pairs(
                    psycopg.connect(DATABASE_URL, autocommit=True), subscribed, others, args.deliveries, args.rate
                )
            )
            feeder.start()
            done = meter.wait(
                lambda: (
                    receiver_state(port)["count"] >= args.deliveries
                    and conn.execute(
                        "SELECT count(*) FROM events_webhookdelivery WHERE status = 'delivered'"
                    ).fetchone()[0]
                    >= args.deliveries
                ),
                1800,
            )
            delivered = meter.stop() | {"all_delivered": done}
            feeder.join()
            time.sleep(2)  # backends report their counts within a second or so of going idle
            # Transactions of every connection to the database, the feeder's and this script's included.
            delivered["transactions"] = conn.execute(COMMITS).fetchone()[0] - commits
            delays = sorted(receiver_state(port)["delays"])
            delivered["per_s"] = round(args.deliveries / delivered["wall_s"], 1)
            delivered["ms_per_delivery"] = per_unit(delivered, args.deliveries)
            delivered["delay_s"] = {
                "p50": round(statistics.median(delays), 3),
                "p99": round(delays[int(len(delays) * 0.99) - 1], 3),
                "max": round(delays[-1], 3),
            }
            (attempts,) = conn.execute("SELECT coalesce(sum(attempts), 0) FROM events_webhookdelivery").fetchone()
            delivered["attempts"] = attempts
            summary["delivered"] = delivered
            say(f"delivered {args.deliveries}: {delivered}")
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
        receiver.terminate()
        receiver.wait()
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
