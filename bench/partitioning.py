"""Time partitioning of the ledger, measured: the history's pages and a month's retention, on the ledger
as it is (one table) and on the same rows in monthly range partitions on ``created_at``.

    .venv/bin/python bench/partitioning.py [--operations 2000000]

Makes two throwaway databases on the server of SCALING_DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/wallet_service_scaling_part; the name must contain "scaling"; it is
dropped), ``<name>_plain`` and ``<name>_monthly``, both migrated with manage.py. In ``_monthly``,
``wallets_operation`` (still empty) is then replaced by a table partitioned by month, with what
PostgreSQL forces on it (see MONTHLY below). Both get the same rows: 10,000 client wallets, 50
merchant wallets, and ``--operations`` operations over 2025 in created_at order (deposits into client
wallets, charges from client wallets into merchants; one merchant, the "heavy" wallet, receives a tenth
of all operations), plus one refund in December of a charge of January.

Then, in each database: the history's first page and a page 11 months deep of the heavy wallet, built
by wallets.selectors.operation_list itself (timed through Django, median of 15 calls, and EXPLAIN
(ANALYZE, BUFFERS) once), and a month's retention: DELETE of February's rows (the append-only trigger
disabled in the transaction) against DETACH + DROP of February's partition, each timed with the WAL it
wrote and then rolled back. A JSON summary is printed at the end (docs/SCALING.md quotes it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BASE_URL = os.environ.get("SCALING_DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/wallet_service_scaling_part"
CLIENT_WALLETS = 10_000
MERCHANT_WALLETS = 50
HEAVY = CLIENT_WALLETS + 1  # the first merchant's wallet id (ids are assigned in insert order)
MONTHS = [f"2025-{m:02d}" for m in range(1, 13)] + [f"2026-{m:02d}" for m in range(1, 13)]

# What partitioning forces, in order: no identity column on a partitioned table before PostgreSQL 17
# (a sequence default instead, owned by the column so pg_get_serial_sequence still finds it); the
# primary key and every unique constraint must include the partition key; a foreign key into the
# ledger (refund_of) must then name both columns, so the refund carries its charge's created_at; the
# append-only trigger is cloned onto every partition (PostgreSQL 13+), but DETACH and DROP are DDL and
# never fire it.
MONTHLY = """
DROP TABLE wallets_operation;
CREATE SEQUENCE wallets_operation_id_seq;
CREATE TABLE wallets_operation (
    id bigint NOT NULL DEFAULT nextval('wallets_operation_id_seq'),
    kind varchar(10) NOT NULL,
    amount numeric(12, 2) NOT NULL,
    summary varchar(255) NOT NULL,
    success boolean NOT NULL,
    created_at timestamptz NOT NULL DEFAULT statement_timestamp(),
    source_id bigint REFERENCES wallets_wallet (id) DEFERRABLE INITIALLY DEFERRED,
    target_id bigint NOT NULL REFERENCES wallets_wallet (id) DEFERRABLE INITIALLY DEFERRED,
    hold_id bigint REFERENCES wallets_hold (id) DEFERRABLE INITIALLY DEFERRED,
    refund_of_id bigint,
    refund_of_created_at timestamptz,
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (id, created_at),
    CONSTRAINT operation_refund_of_pair CHECK ((refund_of_id IS NULL) = (refund_of_created_at IS NULL)),
    FOREIGN KEY (refund_of_id, refund_of_created_at) REFERENCES wallets_operation (id, created_at)
) PARTITION BY RANGE (created_at);
ALTER SEQUENCE wallets_operation_id_seq OWNED BY wallets_operation.id;
CREATE INDEX operation_source_history_idx ON wallets_operation (source_id, created_at DESC, id DESC)
    WHERE source_id IS NOT NULL;
CREATE INDEX operation_target_history_idx ON wallets_operation (target_id, created_at DESC, id DESC);
CREATE INDEX operation_refund_of_idx ON wallets_operation (refund_of_id, refund_of_created_at)
    WHERE refund_of_id IS NOT NULL;
CREATE TRIGGER wallets_operation_append_only BEFORE UPDATE OR DELETE ON wallets_operation
    FOR EACH ROW EXECUTE FUNCTION wallets_operation_append_only();
"""


def say(message: str) -> None:
    print(f"[partitioning {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def url_of(dbname: str) -> str:
    return urlunsplit(urlsplit(BASE_URL)._replace(path=f"/{dbname}"))


def recreate(dbname: str) -> None:
    with psycopg.connect(url_of("postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {dbname}")


def django_env(url: str) -> dict:
    env = dict(os.environ, DATABASE_URL=url, WALLET_SERVICE_LOG_LEVEL="warning")
    env.setdefault("WALLET_SERVICE_SECRET_KEY", "partitioning-experiment-only-secret-key-0123456789")
    return env


def load(url: str, operations: int, monthly: bool) -> dict:
    timings = {}
    with psycopg.connect(url, autocommit=True) as conn:
        if monthly:
            # The model's CHECK constraints (amount, the shape of each kind) carry over unchanged.
            checks = conn.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'wallets_operation'::regclass AND contype = 'c'"
            ).fetchall()
            conn.execute(MONTHLY)
            for name, definition in checks:
                conn.execute(f"ALTER TABLE wallets_operation ADD CONSTRAINT {name} {definition}")
            for month in MONTHS:
                year, number = map(int, month.split("-"))
                end = f"{year + (number == 12)}-{number % 12 + 1:02d}-01"
                conn.execute(
                    f"CREATE TABLE wallets_operation_{month.replace('-', '_')} PARTITION OF wallets_operation "
                    f"FOR VALUES FROM ('{month}-01') TO ('{end}')"
                )
            conn.execute("CREATE TABLE wallets_operation_default PARTITION OF wallets_operation DEFAULT")
        conn.execute(
            """
            INSERT INTO accounts_user (password, email, kind, is_active, is_staff, is_superuser, date_joined)
            SELECT '!', 'user' || n || '@partitioning.example.com', CASE WHEN n > %(clients)s THEN 'company'
                   ELSE 'client' END, true, false, false, now()
              FROM generate_series(1, %(all)s) n ORDER BY n
            """,
            {"clients": CLIENT_WALLETS, "all": CLIENT_WALLETS + MERCHANT_WALLETS},
        )
        conn.execute(
            """
            INSERT INTO accounts_company (user_id, name, url, first_name, last_name, phone_number)
            SELECT id, 'Shop ' || id, 'https://shop.example.com', 'A', 'B', '+34666000000'
              FROM accounts_user WHERE kind = 'company'
            """
        )
        conn.execute(
            """
            INSERT INTO wallets_wallet (token, owner_id, balance, created_at)
            SELECT 'wallet-' || id, id, 0, '2025-01-01' FROM accounts_user ORDER BY id
            """
        )
        first = conn.execute("SELECT min(id), max(id) FROM wallets_wallet").fetchone()
        if first != (1, CLIENT_WALLETS + MERCHANT_WALLETS):
            raise RuntimeError(f"wallet ids are not 1..n: {first}")
        began = time.monotonic()
        # Odd rows: a deposit into a client wallet. Even rows: a charge from a client wallet into a
        # merchant, the heavy one (wallet HEAVY) for every fifth charge: a tenth of all rows.
        conn.execute(
            """
            INSERT INTO wallets_operation (kind, source_id, target_id, amount, summary, success, created_at)
            SELECT CASE WHEN g %% 2 = 1 THEN 'deposit' ELSE 'charge' END,
                   CASE WHEN g %% 2 = 1 THEN NULL ELSE 1 + (g::bigint * 7919) %% %(clients)s END,
                   CASE WHEN g %% 2 = 1 THEN 1 + g %% %(clients)s
                        WHEN g %% 10 = 0 THEN %(heavy)s ELSE %(heavy)s + 1 + g %% (%(merchants)s - 1) END,
                   1.00, 'operation ' || g, true,
                   timestamptz '2025-01-01 00:00:00+00' + (g - 1) * (interval '365 days' / %(n)s)
              FROM generate_series(1, %(n)s) g
            """,
            {"clients": CLIENT_WALLETS, "heavy": HEAVY, "merchants": MERCHANT_WALLETS, "n": operations},
        )
        timings["insert_s"] = round(time.monotonic() - began, 1)
        charge = conn.execute(
            "SELECT id, created_at, source_id, target_id FROM wallets_operation "
            "WHERE kind = 'charge' ORDER BY created_at, id LIMIT 1"
        ).fetchone()
        refund_columns = "refund_of_id, refund_of_created_at" if monthly else "refund_of_id"
        refund_values = "%(id)s, %(at)s" if monthly else "%(id)s"
        conn.execute(
            f"""
            INSERT INTO wallets_operation (kind, source_id, target_id, amount, summary, success, created_at,
                                           {refund_columns})
            VALUES ('refund', %(merchant)s, %(client)s, 1.00, 'refund', true, '2025-12-31 12:00+00', {refund_values})
            """,
            {"id": charge[0], "at": charge[1], "merchant": charge[3], "client": charge[2]},
        )
        began = time.monotonic()
        conn.execute("VACUUM ANALYZE")
        timings["vacuum_analyze_s"] = round(time.monotonic() - began, 1)
        timings["operations"] = conn.execute("SELECT count(*) FROM wallets_operation").fetchone()[0]
        timings["heavy_wallet_operations"] = conn.execute(
            "SELECT count(*) FROM wallets_operation WHERE target_id = %s", [HEAVY]
        ).fetchone()[0]
        timings["ledger_mb"] = conn.execute(
            "SELECT round(sum(pg_total_relation_size(c.oid)) / 1048576.0)::int FROM pg_class c "
            "WHERE c.relkind = 'r' AND c.relname LIKE 'wallets_operation%'"
        ).fetchone()[0]
    return timings


def measure_history(url: str, monthly: bool) -> dict:
    """The heavy wallet's first page and a page 11 months deep, as the service builds them."""
    os.environ.update(django_env(url))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_service.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User
    from wallets import selectors

    connection.close()
    connection.settings_dict["NAME"] = urlsplit(url).path.lstrip("/")
    owner = User.objects.get(pk=HEAVY)
    token = f"wallet-{HEAVY}"
    first = selectors.operation_list(owner=owner, wallet_token=token, limit=101)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT created_at, id FROM wallets_operation WHERE target_id = %s AND created_at < '2025-02-01' "
            "ORDER BY created_at DESC, id DESC LIMIT 1",
            [HEAVY],
        )
        deep_at, deep_id = cursor.fetchone()
    deep = selectors.HistoryPosition(created_at=deep_at, id=deep_id, snapshot=first.snapshot)
    pages = {"first_page": None, "deep_page": deep}
    results = {}
    for name, after in pages.items():
        times = []
        for _ in range(15):
            began = time.perf_counter()
            page = selectors.operation_list(owner=owner, wallet_token=token, after=after, limit=101)
            times.append((time.perf_counter() - began) * 1000)
        assert len(page.operations) == 101, len(page.operations)
        with CaptureQueriesContext(connection) as captured:
            selectors.operation_list(owner=owner, wallet_token=token, after=after, limit=101)
        statement = captured.captured_queries[0]["sql"]
        variants = {"as_today": statement}
        if monthly:
            # The page's rows joined back to the ledger by (id, created_at): run-time partition pruning.
            variants["join_by_id_and_created_at"] = statement.replace(
                "SELECT id FROM (SELECT id, created_at", "SELECT id, created_at FROM (SELECT id, created_at"
            ).replace("ON o.id = page.id", "ON o.id = page.id AND o.created_at = page.created_at")
        for variant, text in variants.items():
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + text)
                plan = cursor.fetchone()[0]
                plan = json.loads(plan) if isinstance(plan, str) else plan
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY ON) " + text)
                plan_text = "\n".join(row[0] for row in cursor.fetchall())
            top = plan[0]
            buffers = top["Plan"].get("Shared Hit Blocks", 0) + top["Plan"].get("Shared Read Blocks", 0)
            results[f"{name}.{variant}"] = {
                "planning_ms": round(top["Planning Time"], 3),
                "execution_ms": round(top["Execution Time"], 3),
                "shared_buffers_touched": buffers,
                "plan": plan_text,
            }
        results[f"{name}.through_django_ms"] = {
            "median": round(statistics.median(times), 2),
            "min": round(min(times), 2),
            "max": round(max(times), 2),
        }
    connection.close()
    return results


def measure_retention(url: str, monthly: bool) -> dict:
    """A month's retention, in a transaction that is rolled back (so it can be compared, not done)."""
    results = {}
    with psycopg.connect(url) as conn:
        for _ in range(3):
            lsn = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
            began = time.perf_counter()
            if monthly:
                conn.execute("ALTER TABLE wallets_operation DETACH PARTITION wallets_operation_2025_02")
                conn.execute("DROP TABLE wallets_operation_2025_02")
                rows = None
            else:
                conn.execute("ALTER TABLE wallets_operation DISABLE TRIGGER wallets_operation_append_only")
                rows = conn.execute(
                    "DELETE FROM wallets_operation WHERE created_at >= '2025-02-01' AND created_at < '2025-03-01'"
                ).rowcount
                conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the deferred foreign-key checks, counted
            elapsed = (time.perf_counter() - began) * 1000
            wal = conn.execute("SELECT pg_current_wal_insert_lsn() - %s::pg_lsn", [lsn]).fetchone()[0]
            conn.rollback()
            results.setdefault("ms", []).append(round(elapsed, 1))
            results.setdefault("wal_bytes", []).append(int(wal))
            results["rows"] = rows
        if monthly:
            # January holds a charge that December's refund references: its partition cannot go.
            try:
                conn.execute("ALTER TABLE wallets_operation DETACH PARTITION wallets_operation_2025_01")
                results["detach_referenced_month"] = "allowed"
            except psycopg.Error as error:
                results["detach_referenced_month"] = f"refused: {str(error).strip().splitlines()[0]}"
            conn.rollback()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=2_000_000)
    args = parser.parse_args()
    base = urlsplit(BASE_URL).path.lstrip("/")
    if "scaling" not in base:
        sys.exit(f"SCALING_DATABASE_URL names {base!r}: it is dropped, so its name must contain 'scaling'.")
    summary = {"operations": args.operations, "load_average_at_start": [round(v, 2) for v in os.getloadavg()]}
    layouts = {"plain": False, "monthly": True}
    for layout, monthly in layouts.items():
        dbname = f"{base}_{layout}"
        url = url_of(dbname)
        say(f"{layout}: (re)creating and migrating {dbname}")
        recreate(dbname)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, env=django_env(url), check=True
        )
        say(f"{layout}: loading {args.operations:,} operations")
        summary[layout] = {"load": load(url, args.operations, monthly)}
        say(f"{layout}: {summary[layout]['load']}")
        summary[layout]["retention"] = measure_retention(url, monthly)
        say(f"{layout}: retention {summary[layout]['retention']}")
    for layout, monthly in layouts.items():
        # In a child process: Django is set up once per process, on one database.
        completed = subprocess.run(
            [sys.executable, __file__, "--history-only", url_of(f"{base}_{layout}"), str(int(monthly))],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        summary[layout]["history"] = json.loads(completed.stdout)
        for name, value in summary[layout]["history"].items():
            shown = {k: v for k, v in value.items() if k != "plan"}
            say(f"{layout}: {name} {shown}")
    summary["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    output = ROOT / "var" / "partitioning.json"
    output.parent.mkdir(exist_ok=True)
    output.write_text(json.dumps(summary, indent=2) + "\n")
    say(f"summary with the plans: {output.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--history-only":
        print(json.dumps(measure_history(sys.argv[2], sys.argv[3] == "1")))
        sys.exit(0)
    sys.exit(main())
