"""``manage.py worker``: the periodic purges run at start and on their interval; SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from knox.models import AuthToken

from accounts.tests.factories import ClientFactory, CompanyFactory
from idempotency.models import IdempotencyKey
from wallet_service.config import BASE_DIR
from wallet_service.database_urls import settings_url
from wallet_service.jobs import JOBS, Job
from wallet_service.management.commands.worker import run_forever
from wallets.models import Hold
from wallets.tests.factories import WalletFactory


def idempotency_key(user, key: str, age: timedelta) -> None:
    row = IdempotencyKey.objects.create(user=user, key=key, method="POST", path="/wallet/create", body_digest="0" * 64)
    IdempotencyKey.objects.filter(pk=row.pk).update(created_at=timezone.now() - age)


def test_the_purges_are_the_workers_jobs():
    assert {job.name for job in JOBS} >= {"purge_auth", "purge_idempotency_keys", "expire_holds"}
    assert all(job.every <= timedelta(hours=1) for job in JOBS if job.name.startswith("purge_"))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_worker_purges_at_start_and_exits_cleanly_on_sigterm(tmp_path):
    user = ClientFactory().user
    AuthToken.objects.create(user=user, expiry=timedelta(seconds=-1))
    _, live_key = AuthToken.objects.create(user=user, expiry=timedelta(hours=1))
    idempotency_key(user, "old", timedelta(hours=25))
    idempotency_key(user, "young", timedelta(hours=1))
    assert AuthToken.objects.count() == 2
    shop, customer = WalletFactory(owner=CompanyFactory().user), WalletFactory(owner=user)
    past, future = timezone.now() - timedelta(seconds=1), timezone.now() + timedelta(hours=1)
    expired = Hold.objects.create(wallet=customer, merchant_wallet=shop, amount=Decimal("1"), expires_at=past)
    live = Hold.objects.create(wallet=customer, merchant_wallet=shop, amount=Decimal("1"), expires_at=future)

    env = {key: value for key, value in os.environ.items() if not key.startswith("WALLET_SERVICE_")}
    env |= {
        "DATABASE_URL": settings_url(connection.settings_dict),
        "WALLET_SERVICE_SECRET_KEY": "worker-test-secret-key-0123456789abcdef",
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as stderr:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "worker"], cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            AuthToken.objects.count() != 1 or IdempotencyKey.objects.filter(key="old").exists()
        ):
            assert worker.poll() is None, log.read_text()
            time.sleep(0.2)
        assert AuthToken.objects.count() == 1, log.read_text()
        assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["young"]
        while time.monotonic() < deadline and Hold.objects.get(pk=expired.pk).status == "pending":
            time.sleep(0.2)
        assert [Hold.objects.get(pk=hold.pk).status for hold in (expired, live)] == ["expired", "pending"]
        time.sleep(0.5)  # idle between runs, waiting for the next turn
        assert worker.poll() is None
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=10) == 0, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    mine = [line for line in lines if line["logger"] == "wallet_service.worker"]
    assert mine[0]["message"] == "worker started"
    done = {line["job"]: line for line in mine if line["message"] == "job done"}
    assert "Deleted 1 expired keys" in done["purge_auth"]["result"]
    assert "Deleted 1 idempotency keys" in done["purge_idempotency_keys"]["result"]
    assert (mine[-1]["message"], mine[-1]["signal"]) == ("worker stopped", "SIGTERM")


@pytest.mark.django_db  # run_job closes the database connections around each job
def test_a_failing_job_is_logged_and_the_others_keep_their_schedule(caplog):
    stop = threading.Event()
    runs: list[str] = []

    def fail() -> str:
        runs.append("fail")
        raise RuntimeError("boom")

    def count() -> str:
        runs.append("count")
        if runs.count("count") == 3:
            stop.set()
        return "ok"

    jobs = [Job("fails", timedelta(hours=1), fail), Job("counts", timedelta(milliseconds=50), count)]
    started = time.monotonic()
    run_forever(jobs, stop)
    assert time.monotonic() - started < 5
    # Each ran at start; only the frequent one ran again, on its interval, despite the other's failure.
    assert runs == ["fail", "count", "count", "count"]
    failed = [record for record in caplog.records if record.message == "job failed"]
    assert failed[0].job == "fails" and failed[0].exc_info is not None
