"""Database expressions shared by the apps."""

from __future__ import annotations

from functools import cache

from django.db import connection
from django.db.models.expressions import Col
from django.db import models
from django.db.models import Func
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


def row_converters(fields) -> list[list[tuple]]:
    """Django's converters of each model field read by hand-written SQL, for the current database.

    PostgreSQL's driver already returns the Python types (Decimal, datetime, bool): there are none.
    SQLite returns text and numbers, which ``convert_row`` turns into what the ORM would return.
    """
    return _row_converters(connection.vendor, tuple(fields))


@cache
def _row_converters(vendor: str, fields: tuple) -> list[list[tuple]]:
    converters = []
    for field in fields:
        expression = Col(field.model._meta.db_table, field)
        functions = connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)
        converters.append([(function, expression) for function in functions])
    return converters


def convert_row(row, converters) -> list:
    values = list(row)
    for index, column in enumerate(converters):
        for function, expression in column:
            values[index] = function(values[index], expression, connection)
    return values


class CurrentTransactionId(Func):
    """``pg_current_xact_id()``: the id of the transaction writing the row (assigning one if needed)."""

    function = "pg_current_xact_id"
    template = "%(function)s()"

    @property
    def output_field(self):
        return TransactionIdField()


class TransactionIdField(models.Field):
    """A ``xid8`` column: the 64-bit id of the transaction that wrote the row (``db_default`` fills it).

    Rows that commit out of id order are put back in commit order by it: a reader that only shows rows
    whose transaction is older than every transaction still running (``pg_snapshot_xmin``), in
    (xid, id) order, never shows a row before another that commits later with an older xid.
    """

    description = "PostgreSQL transaction id (xid8)"

    def db_type(self, connection) -> str:
        return "xid8"
