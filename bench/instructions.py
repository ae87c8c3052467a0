"""CPU instructions per request, counted by callgrind in one process: a cost a noisy machine cannot blur.

    make bench-instructions                  # charge, deposit, info: 200 requests each
    INSTRUCTIONS_REQUESTS=50 make bench-instructions
    INSTRUCTIONS_SCENARIOS=info make bench-instructions

What it measures: the work a server worker does for one request once granian has read it — the ASGI
shim's environ (``a2wsgi.build_environ``, as ``wallet_service/asgi.py`` does) and ``Application.run``:
Django's WSGI handler with every middleware, DRF, the view, the services, psycopg and libpq sending
the statements. Not counted: granian's Rust HTTP parsing, the event loop's hop to the Django thread,
and PostgreSQL (another process). Settings are the server's (``wallet_service.settings``, log level
``info``: the request log line is formatted and written, to a file here), with Prometheus in
multiprocess mode as under ``wallet_service/serve.py``.

How: ``--setup`` (a plain Python process) drops and re-creates the database of
``INSTRUCTIONS_DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/wallet_service_instructions``;
the name must contain ``instructions`` or ``bench``), migrates it, signs up 10 companies (each with its
wallet) and 2 clients with 10 funded wallets each. Then ``--measure`` runs under
``valgrind --tool=callgrind --collect-atstart=no --toggle-collect=_operator_call --dump-after=_operator_call``:
for each scenario, 20 unrecorded warm-up requests (imports, caches, the database connection), then
``INSTRUCTIONS_REQUESTS`` requests inside ``operator.call`` — the only C function callgrind collects in,
so each scenario's count is its own dump. Every answer's status is checked. The result: instructions
(``Ir``) per request for each scenario, printed and written to ``var/instructions/result.json``.
Instruction counts do not depend on the machine's load; they move with the code (and a little with the
data: ids, the number of rows in an index), so compare runs of this script, not of others.
"""

from __future__ import annotations

import glob
import io
import json
import operator
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "instructions"
DATA = VAR / "data.json"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/wallet_service_instructions"
WARMUP = 20
SCENARIOS = tuple(os.environ.get("INSTRUCTIONS_SCENARIOS", "charge deposit info").split())
if not SCENARIOS or set(SCENARIOS) - {"charge", "deposit", "info", "bulk"}:
    sys.exit("INSTRUCTIONS_SCENARIOS: one or more of charge, deposit, info, bulk")
BULK_BATCH = 100  # charges per request of the bulk scenario (POST /wallet/charges), as in make bench
COMPANIES, CLIENTS, WALLETS_PER_CLIENT = 10, 2, 10
PASSWORD = "instructions-Passw0rd"


def database_url() -> str:
    url = os.environ.get("INSTRUCTIONS_DATABASE_URL", DEFAULT_URL)
    name = urlsplit(url).path.lstrip("/")
    if "instructions" not in name and "bench" not in name:
        sys.exit(f"INSTRUCTIONS_DATABASE_URL's database {name!r} must contain 'instructions' or 'bench': it is dropped")
    return url


def django_environment(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("WALLET_SERVICE_SECRET_KEY", "insecure-instructions-only-secret-key-0123456789abcdef")
    os.environ["WALLET_SERVICE_LOG_LEVEL"] = "info"
    os.environ["WALLET_SERVICE_AUTH_THROTTLE_RATE"] = "off"
    os.environ["DJANGO_SETTINGS_MODULE"] = "wallet_service.settings"
    sys.path.insert(0, str(ROOT))


def setup() -> None:
    url = database_url()
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    import psycopg

    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    django_environment(url)
    import django

    django.setup()
    from decimal import Decimal

    from django.core.management import call_command

    from accounts.services import client_signup, company_signup
    from wallets import services

    call_command("migrate", verbosity=0)
    phone = "+34666666666"
    companies = []
    for n in range(COMPANIES):
        issued = company_signup(
            email=f"shop{n}@example.com",
            password=PASSWORD,
            name=f"Shop {n}",
            url="https://shop.example.com",
            first_name="Luis",
            last_name="Pérez",
            phone_number=phone,
        )
        services.wallet_create(owner=issued.user)
        companies.append(issued.token)
    clients = []
    for n in range(CLIENTS):
        issued = client_signup(
            email=f"client{n}@example.com", password=PASSWORD, first_name="Ana", last_name="García", phone_number=phone
        )
        wallets = []
        for _ in range(WALLETS_PER_CLIENT):
            wallet = services.wallet_create(owner=issued.user)
            services.wallet_deposit(owner=issued.user, wallet_token=wallet.token, amount=Decimal("1000000.00"))
            wallets.append(wallet.token)
        clients.append({"key": issued.token, "wallets": wallets})
    VAR.mkdir(parents=True, exist_ok=True)
    DATA.write_text(json.dumps({"companies": companies, "clients": clients}))


def scope(method: str, path: str, key: str, body: bytes) -> dict:
    headers = [(b"host", b"127.0.0.1:8000"), (b"authorization", f"Token {key}".encode())]
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


def requests(scenario: str, data: dict, count: int, start: int):
    """``count`` requests of ``scenario``, as (scope, body, expected status); ``start`` keeps summaries unique."""
    clients = data["clients"]
    for i in range(start, start + count):
        client = clients[i % len(clients)]
        wallet = client["wallets"][(i // len(clients)) % len(client["wallets"])]
        if scenario == "info":
            yield scope("GET", f"/wallet/info/{wallet}", client["key"], b""), b"", 200
            continue
        if scenario == "bulk":  # a batch of BULK_BATCH charges over every client wallet, by one company
            wallets = [w for c in clients for w in c["wallets"]]
            items = [
                {"wallet": wallets[(i + n) % len(wallets)], "amount": "0.01", "summary": f"bulk {i}-{n}"}
                for n in range(BULK_BATCH)
            ]
            body = json.dumps({"charges": items}).encode()
            yield scope("POST", "/wallet/charges", data["companies"][i % len(data["companies"])], body), body, 200
            continue
        key = data["companies"][i % len(data["companies"])] if scenario == "charge" else client["key"]
        body = json.dumps({"wallet": wallet, "amount": "0.01", "summary": f"{scenario} {i}"}).encode()
        yield scope("POST", f"/wallet/{scenario}", key, body), body, 200


def measure(count: int) -> None:
    django_environment(database_url())
    metrics_dir = tempfile.mkdtemp(prefix="instructions-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    # The request log line goes to stderr, as under the server; here into a file.
    log = open(VAR / "server.log", "w")  # noqa: SIM115 (open for the process's life)
    os.dup2(log.fileno(), 2)
    from a2wsgi.wsgi import build_environ

    from wallet_service.asgi import application

    data = json.loads(DATA.read_text())

    def serve(batch) -> None:
        for request_scope, body, expected in batch:
            status, _, content = application.run(build_environ(request_scope, io.BytesIO(body)))
            if status != expected:
                raise SystemExit(f"{request_scope['method']} {request_scope['path']}: {status} {content[:300]!r}")

    for scenario in SCENARIOS:
        serve(list(requests(scenario, data, WARMUP, 0)))
        batch = list(requests(scenario, data, count, WARMUP))
        operator.call(serve, batch)  # collected by callgrind, then dumped


def profile(scenario: str, count: int, *, by_component: bool = False) -> None:
    """Where the Python time of ``scenario`` goes (cProfile, after a warm-up), on the data of the last set-up.

    ``by_component``: each function's own time added up by the component its file belongs to (``COMPONENTS``),
    a C built-in's counted where it was called from.
    """
    import cProfile
    import pstats

    django_environment(database_url())
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="instructions-metrics-")
    from a2wsgi.wsgi import build_environ

    from wallet_service.asgi import application

    data = json.loads(DATA.read_text())
    start = int.from_bytes(os.urandom(3), "big") * 1000  # summaries unique across runs
    for request_scope, body, _ in requests(scenario, data, WARMUP, start):
        application.run(build_environ(request_scope, io.BytesIO(body)))
    batch = list(requests(scenario, data, count, start + WARMUP))
    profiler = cProfile.Profile(time.process_time)  # CPU, not the waits on the database
    profiler.enable()
    for request_scope, body, _ in batch:
        application.run(build_environ(request_scope, io.BytesIO(body)))
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stdout)
    if not by_component:
        stats.sort_stats(os.environ.get("INSTRUCTIONS_SORT", "cumulative")).print_stats(60)
        return
    own: dict[str, float] = {}
    for (path, _, _), (_, _, total, _, callers) in stats.stats.items():
        if path != "~":
            own[component(path)] = own.get(component(path), 0.0) + total
            continue
        edges = sum(edge[2] for edge in callers.values()) or 1.0
        for (caller, _, _), edge in callers.items():  # a built-in's time, shared out among its callers
            own[component(caller)] = own.get(component(caller), 0.0) + total * edge[2] / edges
    whole = sum(own.values())
    print(f"{scenario}: {whole / count * 1000:.3f} ms of CPU per request under cProfile; own time by component:")
    for name, seconds in sorted(own.items(), key=lambda item: -item[1]):
        print(f"  {name:42} {seconds / whole:6.1%}")


# (component, what a file's path contains), first match wins; anything else is "other".
COMPONENTS = (
    ("psycopg (statements, rows)", "/psycopg/"),
    ("Django: database layer (cursor, ORM, signals)", "/django/db/"),
    ("Django: URL resolution", "/django/urls/"),
    ("Django: request, response, handler, middleware", "/django/"),
    ("DRF: dispatch, request, response, rendering", "/rest_framework/"),
    ("knox (token digest)", "/knox/"),
    ("Prometheus (prometheus_client, django_prometheus)", "prometheus"),
    ("request log line (logging, python-json-logger)", "/logging/"),
    ("request log line (logging, python-json-logger)", "/pythonjsonlogger/"),
    ("request log line (logging, python-json-logger)", "/wallet_service/logs.py"),
    ("CORS, WhiteNoise", "/corsheaders/"),
    ("CORS, WhiteNoise", "/whitenoise/"),
    ("ASGI shim (a2wsgi environ, wallet_service/asgi.py)", "/a2wsgi/"),
    ("ASGI shim (a2wsgi environ, wallet_service/asgi.py)", "/wallet_service/asgi.py"),
    ("Django's thread-local connections (asgiref)", "/asgiref/"),
    ("service: middleware, authentication, database wrapper", "/wallet_service/"),
    ("service: the endpoint (wallets, accounts, idempotency, events)", "/wallets/"),
    ("service: the endpoint (wallets, accounts, idempotency, events)", "/accounts/"),
    ("service: the endpoint (wallets, accounts, idempotency, events)", "/idempotency/"),
    ("service: the endpoint (wallets, accounts, idempotency, events)", "/events/"),
)


def component(path: str) -> str:
    return next((name for name, part in COMPONENTS if part in path), "other (standard library: json, uuid, re...)")


def main() -> None:
    if sys.argv[1:2] == ["--setup"]:
        return setup()
    count = int(os.environ.get("INSTRUCTIONS_REQUESTS", "200"))
    if sys.argv[1:2] == ["--measure"]:
        return measure(count)
    if sys.argv[1:2] == ["--profile"]:
        return profile(sys.argv[2], count)
    if sys.argv[1:2] == ["--components"]:
        return profile(sys.argv[2], count, by_component=True)
    subprocess.run([sys.executable, __file__, "--setup"], check=True)
    for old in glob.glob(str(VAR / "callgrind.out*")):
        os.remove(old)
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--collect-atstart=no",
            "--toggle-collect=_operator_call",
            "--dump-after=_operator_call",
            f"--callgrind-out-file={VAR}/callgrind.out",
            sys.executable,
            __file__,
            "--measure",
        ],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    dumps = sorted(glob.glob(str(VAR / "callgrind.out.*")), key=lambda path: int(path.rsplit(".", 1)[1]))
    totals = []
    for path in dumps:
        for line in Path(path).read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                totals.append(int(line.split()[1]))
                break
    if len(totals) != len(SCENARIOS):
        sys.exit(f"expected {len(SCENARIOS)} callgrind dumps, found {dumps}")
    result = {scenario: round(total / count) for scenario, total in zip(SCENARIOS, totals, strict=True)}
    result["requests"] = count
    (VAR / "result.json").write_text(json.dumps(result) + "\n")
    print(f"instructions per request ({count} requests each, callgrind Ir):")
    for scenario in SCENARIOS:
        print(f"  {scenario:8} {result[scenario]:>12,}")
    print(f"callgrind files (per-function costs: callgrind_annotate): {VAR}/callgrind.out.*")


if __name__ == "__main__":
    main()
