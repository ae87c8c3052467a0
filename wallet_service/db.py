"""Database expressions shared by the apps."""

from __future__ import annotations

from django.db import models
from django.db.models import Func
from django.db.models.functions import Now


class DatabaseNow(Now):
    """The database's clock, for timestamps taken inside a transaction (``db_default=DatabaseNow()``).

    PostgreSQL's ``STATEMENT_TIMESTAMP()``, as Django's ``Now``; a class of its own because the
    migrations name it.
    """


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
