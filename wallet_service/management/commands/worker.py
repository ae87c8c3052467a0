"""``manage.py worker``: run the service's periodic jobs (wallet_service/jobs.py) and deliver webhooks
(events/webhooks/delivery.py, in a thread of its own) until SIGTERM.

Every job runs once at start, then every ``job.every`` after its previous run ended. Each run is
logged as one JSON line (logger ``wallet_service.worker``: ``job``, ``duration_ms``, ``result``); a
job that fails is logged with its traceback and tried again at its next turn, the worker goes on.
SIGTERM or SIGINT stops it after the job in progress, if any, has finished and the webhook attempts in
flight have ended (each within its 10-second timeout): exit status 0.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Sequence

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections, connections

from events.webhooks import delivery
from wallet_service.jobs import JOBS, Job

logger = logging.getLogger("wallet_service.worker")


def run_job(job: Job) -> bool:
    """Run ``job`` once, logging its outcome; True if it succeeded."""
    close_old_connections()
    started = time.monotonic()
    try:
        result = job.run()
    except Exception:
        logger.exception(
            "job failed", extra={"job": job.name, "duration_ms": round((time.monotonic() - started) * 1000)}
        )
        return False
    finally:
        # Runs are far apart: never keep a connection idle until the next one.
        connections.close_all()
    logger.info(
        "job done", extra={"job": job.name, "duration_ms": round((time.monotonic() - started) * 1000), "result": result}
    )
    return True


def run_forever(jobs: Sequence[Job], stop: threading.Event) -> None:
    """Run ``jobs`` on their intervals, first all at once, until ``stop`` is set."""
    due = {job.name: time.monotonic() for job in jobs}
    while not stop.is_set():
        for job in jobs:
            if stop.is_set():
                break
            if due[job.name] <= time.monotonic():
                run_job(job)
                due[job.name] = time.monotonic() + job.every.total_seconds()
        stop.wait(max(0.0, min(due.values()) - time.monotonic()))


class Command(BaseCommand):
    help = "Run the periodic jobs (purges; see wallet_service/jobs.py) until SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run every job once and exit (1 if one failed).")
        parser.add_argument("--job", action="append", dest="names", metavar="NAME", help="Only this job (repeatable).")
        parser.add_argument("--no-deliveries", action="store_true", help="Run the jobs only, deliver no webhooks.")

    def handle(self, *args, once: bool, names: list[str] | None, no_deliveries: bool, **options):
        jobs = JOBS
        if names:
            unknown = sorted(set(names) - {job.name for job in JOBS})
            if unknown:
                raise CommandError(f"unknown job {', '.join(unknown)}; jobs: {', '.join(job.name for job in JOBS)}")
            jobs = [job for job in JOBS if job.name in names]
        if once:
            if not all([run_job(job) for job in jobs]):
                raise CommandError("a job failed")
            return
        stop = threading.Event()
        received: list[str] = []

        def request_stop(signum, frame):
            received.append(signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        schedule = {job.name: job.every.total_seconds() for job in jobs}
        logger.info("worker started", extra={"jobs": schedule, "deliveries": not no_deliveries})
        delivery_thread = None if no_deliveries else delivery.start(stop)
        run_forever(jobs, stop)
        if delivery_thread is not None:
            delivery_thread.join()
        logger.info("worker stopped", extra={"signal": received[0] if received else None})
