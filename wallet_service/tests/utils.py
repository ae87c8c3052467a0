"""Assertions shared by the API tests of every app."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

SAVEPOINT_RE = re.compile(r"\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)\b")

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body.keys() >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"/problems/{code}"
    assert isinstance(body["detail"], str) and body["detail"]
    return body


@contextmanager
def assert_max_queries(limit: int):
    """At most ``limit`` SQL statements, not counting savepoints.

    Tests run inside a transaction, so a service's ``atomic()`` becomes a savepoint here; in
    production it is the outermost block and costs no statement of its own.
    """
    with CaptureQueriesContext(connection) as captured:
        yield captured
    statements = [query["sql"] for query in captured.captured_queries if not SAVEPOINT_RE.match(query["sql"])]
    assert len(statements) <= limit, f"{len(statements)} queries, at most {limit} expected:\n" + "\n".join(statements)


def race(calls, timeout: float = 120) -> list:
    """Run every call at the same moment, each on its own thread and database connection (or HTTP request).

    Returns the calls' results in order; an exception in any thread, or a thread still running after
    ``timeout`` seconds, fails the test.
    """
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index, call):
        try:
            barrier.wait()
            results[index] = call()
        except BaseException as error:  # surfaced below: a thread's failure must fail the test
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=item) for item in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), f"a call still runs after {timeout} s"
    assert not errors, errors
    return results


def on_another_connection(call) -> None:
    """Run ``call`` to completion on another thread, so that it commits on its own connection."""
    race([call])


def wait_until_blocked_on_a_lock() -> None:
    """Return once a session on this test's database waits for a lock; fail after 30 s."""
    deadline = time.monotonic() + 30
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.05)
    raise AssertionError("the second call never waited for a lock the first one holds")


def behind_a_lock(first: Callable[[], object], second: Callable[[], object], *, refused: type[BaseException]):
    """What ``second`` gives when it has to wait for a lock ``first`` took, and ``first`` then commits.

    ``first`` runs in a transaction on its own thread and keeps it open; then ``second`` starts on another
    thread; once it is seen waiting for a lock (``pg_stat_activity``), ``first``'s transaction commits.
    Returns ``second``'s result, or the ``refused`` exception it raised. Both run on their own connections.
    """
    holding, release = threading.Event(), threading.Event()
    outcome: list = []

    def hold():
        try:
            with transaction.atomic():
                first()
                holding.set()
                assert release.wait(30)
        finally:
            connections.close_all()

    def wait():
        try:
            outcome.append(second())
        except refused as error:
            outcome.append(error)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(30), "the first call did not finish"
    waiter = threading.Thread(target=wait)
    waiter.start()
    try:
        wait_until_blocked_on_a_lock()
    finally:
        release.set()
        holder.join(30)
        waiter.join(30)
    assert outcome, "the second call raised something other than the expected refusal"
    return outcome[0]


def explained(statement: str, params=None) -> dict:
    """The root node of ``statement``'s plan as run (``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)``): it is executed."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, params)
        (plan,) = cursor.fetchone()
    return (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]


def plan_nodes(plan: dict):
    """Every node of a plan from ``explained``, the root first."""
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)
