"""The embedded PostgreSQL supervisor (wallet_service/embedded_db.py), as `make run` and `make test` use it.

Each test gives the supervisor a directory of its own (EMBEDDED_PG_DIR), so neither the checkout's
var/pgdata nor a `make run` in progress is touched. No database is mocked: real servers start and stop.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from wallet_service import embedded_db
from wallet_service.config import BASE_DIR

# The command the supervisor runs: report what the server it was given is, then wait for a file if asked.
PROBE = """
import os, sys, time, psycopg
with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as connection:
    row = connection.execute(
        "SELECT current_database(), current_setting('listen_addresses'), current_setting('data_directory'),"
        " current_setting('server_version_num')::int"
    ).fetchone()
    print("|".join(map(str, row)), flush=True)
    if len(sys.argv) > 1 and sys.argv[1] == "create":
        connection.execute("CREATE TABLE kept (note text)")
        connection.execute("INSERT INTO kept VALUES ('from the first run')")
    if len(sys.argv) > 1 and sys.argv[1] == "read":
        print(connection.execute("SELECT note FROM kept").fetchone()[0], flush=True)
if len(sys.argv) > 1 and sys.argv[1] == "wait":
    open(sys.argv[2], "w").close()
    time.sleep(120)
"""


@pytest.fixture
def embedded_dir():
    # Not pytest's tmp_path: as root, the server runs as `nobody`, who must reach the directory.
    directory = Path(tempfile.mkdtemp(prefix="wallet-embedded-"))
    directory.chmod(0o755)
    yield directory / "var"
    shutil.rmtree(directory, ignore_errors=True)


def supervisor_env(embedded_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    return env | {"EMBEDDED_PG_DIR": str(embedded_dir)}


def supervise(embedded_dir: Path, *args: str, action: str = "run", timeout: float = 120):
    command = [sys.executable, "-m", "wallet_service.embedded_db", action]
    if action == "test":
        command += ["--probe", "postgres://postgres@127.0.0.1:1/nothing_answers_here"]
    return subprocess.run(
        [*command, "--", sys.executable, "-c", PROBE, *args],
        cwd=BASE_DIR,
        env=supervisor_env(embedded_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def server_running(embedded_dir: Path) -> bool:
    try:
        pid = int((embedded_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
        return True
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.slow  # starts PostgreSQL servers (initdb, start, stop): seconds each
def test_first_run_creates_the_database_the_next_reuses_it_and_each_stops_the_server(embedded_dir):
    first = supervise(embedded_dir, "create")
    assert first.returncode == 0, first.stderr
    assert "first run" in first.stderr
    database, listen, data_directory, version = first.stdout.splitlines()[-1].split("|")
    assert database == "wallet_service"
    assert listen == ""  # a Unix socket only: no TCP port, nothing to clash with a server on 5432
    assert Path(data_directory) == embedded_dir / "pgdata"
    assert int(version) >= 180000
    assert (embedded_dir / "pgrun").stat().st_mode & 0o777 == 0o700  # nobody else can reach the socket
    if os.geteuid() == 0:  # PostgreSQL refuses root: it ran as an unprivileged account
        assert (embedded_dir / "pgdata").stat().st_uid != 0
    assert not server_running(embedded_dir)

    second = supervise(embedded_dir, "read")
    assert second.returncode == 0, second.stderr
    assert "first run" not in second.stderr
    assert second.stdout.splitlines()[-1] == "from the first run"
    assert not server_running(embedded_dir)


@pytest.mark.slow  # starts PostgreSQL servers (initdb, start, stop): seconds each
def test_the_commands_exit_status_is_returned_and_the_server_still_stopped(embedded_dir):
    failing = subprocess.run(
        [sys.executable, "-m", "wallet_service.embedded_db", "run", "--", sys.executable, "-c", "raise SystemExit(3)"],
        cwd=BASE_DIR,
        env=supervisor_env(embedded_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failing.returncode == 3
    assert not server_running(embedded_dir)


def wait_for(path: Path, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the supervised command did not start"
        time.sleep(0.1)


@pytest.mark.slow  # starts PostgreSQL servers (initdb, start, stop): seconds each
def test_one_server_per_checkout_and_sigterm_stops_the_command_then_the_server(embedded_dir):
    ready = embedded_dir.parent / "ready"
    running = subprocess.Popen(
        [sys.executable, "-m", "wallet_service.embedded_db", "run", "--", sys.executable, "-c", PROBE, "wait", ready],
        cwd=BASE_DIR,
        env=supervisor_env(embedded_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(ready, running)
        # A second `make run` in the same checkout is refused, naming the holder.
        second = supervise(embedded_dir)
        assert second.returncode == 2
        assert f"already in use by process {running.pid}" in second.stderr
        # `make test` uses the running server instead of starting another.
        shared = supervise(embedded_dir, action="test")
        assert shared.returncode == 0, shared.stderr
        assert f"run by process {running.pid}" in shared.stdout
        assert server_running(embedded_dir)

        running.send_signal(signal.SIGTERM)
        _, stderr = running.communicate(timeout=60)
    finally:
        if running.poll() is None:
            running.kill()
    assert running.returncode == 128 + signal.SIGTERM, stderr  # the command's status, as a shell reports it
    assert not server_running(embedded_dir)
    # The lock went with the supervisor: the next run starts.
    assert supervise(embedded_dir).returncode == 0


def test_database_url_set_runs_the_command_on_that_server_without_starting_one(embedded_dir):
    env = supervisor_env(embedded_dir) | {"DATABASE_URL": os.environ["DATABASE_URL"]}
    done = subprocess.run(
        [sys.executable, "-m", "wallet_service.embedded_db", "test", "--probe", "postgres://x@127.0.0.1:1/x", "--"]
        + [sys.executable, "-c", "import os; print(os.environ['DATABASE_URL'])"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"Test database: the server of DATABASE_URL ({os.environ['DATABASE_URL']})",
        os.environ["DATABASE_URL"],
    ]
    assert not (embedded_dir / "pgdata").exists()


def test_the_services_default_database_is_the_embedded_server():
    # settings.py without DATABASE_URL: the embedded server's socket, never a file or another engine.
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", "from django.db import connection as c; print(c.settings_dict)"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "'ENGINE': 'wallet_service.database'" in done.stdout
    assert f"'HOST': '{embedded_db.socket_dir()}'" in done.stdout
    assert "'NAME': 'wallet_service'" in done.stdout
