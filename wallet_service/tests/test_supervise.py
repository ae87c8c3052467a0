"""wallet_service.supervise: make run's app server and worker, started and stopped together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from django.db import connection

from wallet_service.config import BASE_DIR
from wallet_service.database_urls import settings_url

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def serve(*command: str) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WALLET_SERVICE_")}
    env |= {
        "DATABASE_URL": settings_url(connection.settings_dict),
        "WALLET_SERVICE_SECRET_KEY": "serve-test-secret-key-0123456789abcdef",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "wallet_service.supervise", "--", *command],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def children_of(process: subprocess.Popen) -> list[psutil.Process]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = psutil.Process(process.pid).children()
        if len(found) == 2:
            return found
        time.sleep(0.1)
    raise AssertionError("serve did not start two children")


def test_sigterm_stops_the_server_and_the_worker():
    serving = serve(sys.executable, "-c", "import time; time.sleep(600)")
    server, worker = children_of(serving)
    assert "worker" in worker.cmdline()
    time.sleep(1)
    serving.send_signal(signal.SIGTERM)
    assert serving.wait(timeout=30) == 128 + signal.SIGTERM
    assert not server.is_running() and not worker.is_running()


def test_a_server_that_fails_leaves_no_worker_behind():
    serving = serve(sys.executable, "-c", "import time, sys; time.sleep(1.5); sys.exit(3)")
    _, worker = children_of(serving)
    assert serving.wait(timeout=30) == 3
    assert not worker.is_running()
