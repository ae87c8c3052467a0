"""Database expressions shared by the apps."""

from __future__ import annotations

from django.db.models.functions import Now


class DatabaseNow(Now):
    """The database's clock, for timestamps taken inside a transaction (``db_default=DatabaseNow()``).

    PostgreSQL: ``STATEMENT_TIMESTAMP()``, as Django's ``Now``. SQLite keeps datetimes as text and
    compares them as text, so the stored value must be written exactly as Django writes query
    parameters (``str(datetime)``: six fraction digits, or none when they are all zero). Django's
    own ``Now`` writes three (``…:13.591``), which sorts before the parameter ``…:13.591000`` of
    the same instant and breaks keyset comparisons. 'now' is one instant within a statement.
    """

    def as_sqlite(self, compiler, connection, **extra_context):
        return (
            "(CASE WHEN STRFTIME('%%f', 'now') LIKE '%%.000' "
            "THEN STRFTIME('%%Y-%%m-%%d %%H:%%M:%%S', 'now') "
            "ELSE STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', 'now') || '000' END)",
            [],
        )
