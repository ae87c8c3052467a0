"""Periodic jobs of the service, run by ``manage.py worker`` (wallet_service/management/commands/worker.py).

A job is a name, an interval and a function that returns a one-line summary. To add one, append it to
``JOBS``; ``command()`` turns a management command into such a function:

    Job("expire_holds", timedelta(minutes=1), command("expire_holds")),

The worker runs every job once when it starts, then each again ``every`` after its previous run ended.
Jobs must be safe to run at any time and from several workers at once (each here is a DELETE of rows
past a cut-off), since a restart, a second worker or a manual run may overlap with a scheduled one.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.core.management import call_command


@dataclass(frozen=True)
class Job:
    name: str
    every: timedelta
    run: Callable[[], str]


def command(name: str, *args: str) -> Callable[[], str]:
    """A job function that runs management command ``name`` and returns what it printed."""

    def run() -> str:
        out = io.StringIO()
        call_command(name, *args, stdout=out)
        return out.getvalue().strip()

    return run


JOBS: list[Job] = [
    Job("purge_auth", timedelta(hours=1), command("purge_auth")),
    Job("purge_idempotency_keys", timedelta(hours=1), command("purge_idempotency_keys")),
    Job("expire_holds", timedelta(seconds=30), command("expire_holds")),
    Job("purge_webhook_deliveries", timedelta(hours=1), command("purge_webhook_deliveries")),
]
