"""DatabaseNow writes SQLite timestamps exactly as Django writes datetime parameters."""

from __future__ import annotations

import sqlite3
from datetime import datetime

import pytest

from wallet_service.db import DatabaseNow


@pytest.mark.parametrize(
    "instant",
    [datetime(2021, 4, 11, 11, 5, 13, 591000), datetime(2021, 4, 11, 11, 5, 13), datetime(2021, 4, 11, 0, 0, 0, 1000)],
)
def test_sqlite_expression_matches_djangos_parameter_format(instant):
    sql, params = DatabaseNow().as_sqlite(compiler=None, connection=None)
    assert params == []
    # The SQL is written for %-formatting; evaluate it at a fixed instant instead of 'now'.
    fixed = (sql % ()).replace("'now'", f"'{instant.isoformat(' ', 'milliseconds')}'")
    (stored,) = sqlite3.connect(":memory:").execute(f"SELECT {fixed}").fetchone()
    assert stored == str(instant)
