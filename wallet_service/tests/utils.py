"""Assertions shared by the API tests of every app."""

from __future__ import annotations

import re
from contextlib import contextmanager

from django.db import connection
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
