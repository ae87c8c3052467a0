"""Schema-driven fuzzing: schemathesis generates requests from /schema and sends them to a live
the server on PostgreSQL, as a client and as a company, over every operation.

Every response must be documented and conform to the schema (status, content type, body,
headers), no request may get a 5xx, and a request the schema says is valid may be refused only for
a reason that depends on the service's state or that a JSON Schema cannot state (see
schemathesis_hooks.py). Settings: schemathesis.toml beside this file. schemathesis runs through
its command line (``st run``), its public interface; each run's report, with the number of
generated requests, is kept in var/artifacts/ and the totals are printed at the end.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from wallet_service.config import BASE_DIR
from wallet_service.tests.conftest import FUZZ_SUMMARY
from wallet_service.tests.servers import BIN, Server, request, signup

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
ARTIFACTS = BASE_DIR / "var" / "artifacts"


def database_url(name: str) -> str:
    return urlunsplit(urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{name}"))


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    """The server on a PostgreSQL database of its own (created and dropped here), throttling off so that
    no generated signup or login gets a 429, and a fast password hasher (fuzz_settings.py)."""
    name = "test_" + urlsplit(os.environ["DATABASE_URL"]).path.lstrip("/") + "_schemathesis"
    with psycopg.connect(database_url("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    log = tmp_path_factory.mktemp("fuzz") / "server.log"
    env = {
        "DATABASE_URL": database_url(name),
        "DJANGO_SETTINGS_MODULE": "wallet_service.tests.fuzz_settings",
        "WALLET_SERVICE_AUTH_THROTTLE_RATE": "off",
    }
    server = Server(env, log, workers=2)
    try:
        server.migrate()
        yield server.start()
    finally:
        server.stop()
        with psycopg.connect(database_url("postgres"), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def key_of(account: dict[str, str]) -> str:
    return account["FUZZ_AUTHORIZATION"].removeprefix("Token ")


@pytest.fixture(scope="module")
def accounts(fuzz_server) -> dict[str, dict[str, str]]:
    """A client with a funded wallet and a company with a wallet, both logged in."""
    found = {}
    for kind in ("client", "company"):
        email = f"fuzz-{kind}@example.com"
        key = signup(fuzz_server.base, kind, email)
        status, body = request(fuzz_server.base, "POST", "/wallet/create", {}, key)
        assert status == 201, body
        found[kind] = {
            "FUZZ_KIND": kind,
            "FUZZ_EMAIL": email,
            "FUZZ_AUTHORIZATION": f"Token {key}",
            "FUZZ_WALLET": body["wallet"],
        }
    funding = {"wallet": found["client"]["FUZZ_WALLET"], "amount": "5000.00"}
    assert request(fuzz_server.base, "POST", "/wallet/deposit", funding, key_of(found["client"]))[0] == 200
    return found


@pytest.fixture(scope="module")
def generated(pytestconfig):
    """Requests generated per identity; the total is printed at the end of the run."""
    counts: dict[str, int] = {}
    yield counts
    if counts:
        line = (
            f"schemathesis: {sum(counts.values())} generated requests over every operation "
            f"({', '.join(f'{count} as a {kind}' for kind, count in counts.items())}); reports in var/artifacts/"
        )
        pytestconfig.stash.setdefault(FUZZ_SUMMARY, []).append(line)


@pytest.mark.parametrize("kind", ["client", "company"])
def test_every_operation_conforms_to_the_schema_under_generated_requests(fuzz_server, accounts, generated, kind):
    env = {
        "PATH": os.environ["PATH"],
        "SCHEMATHESIS_HOOKS": "wallet_service.tests.schemathesis_hooks",
        "PYTHONPATH": str(BASE_DIR),
        "NO_COLOR": "1",
        "COLUMNS": "120",
        **accounts[kind],
        "FUZZ_CLIENT_WALLET": accounts["client"]["FUZZ_WALLET"],
        "FUZZ_CLIENT_AUTHORIZATION": accounts["client"]["FUZZ_AUTHORIZATION"],
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stats = ARTIFACTS / f"schemathesis-{kind}-requests.txt"
    stats.unlink(missing_ok=True)
    env["FUZZ_STATS"] = str(stats)
    command = [BIN / "st", "--config-file", HERE / "schemathesis.toml", "run", f"{fuzz_server.base}/schema"]
    if os.environ.get("SCHEMATHESIS_MAX_EXAMPLES"):
        # A deeper run than CI's, from a developer's shell.
        command += ["--max-examples", os.environ["SCHEMATHESIS_MAX_EXAMPLES"]]
    result = subprocess.run(
        command,
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    report = ARTIFACTS / f"schemathesis-{kind}.txt"
    report.write_text(result.stdout + result.stderr)
    assert result.returncode == 0, f"schemathesis found problems (report: {report}):\n{result.stdout[-20000:]}"
    match = re.search(r"Test cases:\s*\n?\s*(\d+) generated", result.stdout)
    assert match, result.stdout
    generated[kind] = int(match.group(1))
    assert generated[kind] > 100
    if kind == "company":
        # The hooks give holds and charges of the company's own: these operations ran through, not only to 404.
        answered = Counter(tuple(line.rsplit(" ", 1)) for line in stats.read_text().splitlines())
        for operation in (
            "GET /wallet/hold/{hold_id}",
            "POST /wallet/hold/{hold_id}/capture",
            "POST /wallet/hold/{hold_id}/void",
            "POST /wallet/refund",
        ):
            assert answered[(operation, "200")] >= 5, {k: v for k, v in answered.items() if k[0] == operation}
