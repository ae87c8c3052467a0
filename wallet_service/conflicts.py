"""Running a transaction again when PostgreSQL aborted it for a deadlock or a serialization failure.

PostgreSQL may abort one of two transactions that wait for each other (``40P01``), even when their statements
take their locks in a consistent order: a foreign-key check's ``FOR KEY SHARE`` on a row another transaction is
updating follows the row's chain of versions while holding the row's tuple lock (docs/LEDGER.md). With 32 threads
charging one company at once, about one charge in 4,000 was aborted so (wallets/tests/test_charge_retries.py). The
aborted transaction changed nothing, so when it was the outermost one it is simply run again; inside a caller's
transaction (an Idempotency-Key's) that transaction is aborted as a whole and the error goes up (503 with
Retry-After, the key released for the client's retry).
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import OperationalError, connection

logger = logging.getLogger(__name__)

RETRIED = {"40P01", "40001"}  # deadlock detected, serialization failure
ATTEMPTS = 4

P = ParamSpec("P")
R = TypeVar("R")


def is_retried_conflict(error: BaseException) -> bool:
    return getattr(error.__cause__, "sqlstate", None) in RETRIED


def retried_on_conflict(function: Callable[P, R]) -> Callable[P, R]:
    """Run ``function`` (whose transactions are its own) up to ATTEMPTS times while PostgreSQL aborts it for a
    deadlock or serialization failure, after a short random pause; at once, and only once, inside an outer
    transaction."""

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        attempt = 1
        while True:
            try:
                return function(*args, **kwargs)
            except OperationalError as error:
                # Read only on the way out (a thread-local lookup costs a charge 1 % of its instructions): the
                # function's own atomic blocks are closed by now, so this says whether the caller has one open.
                if attempt == ATTEMPTS or not is_retried_conflict(error) or connection.in_atomic_block:
                    raise
                logger.warning(
                    "transaction aborted by a conflict, run again",
                    extra={"sqlstate": error.__cause__.sqlstate, "attempt": attempt, "function": function.__name__},
                )
            time.sleep(random.uniform(0.001, 0.01) * attempt)
            attempt += 1

    return run
