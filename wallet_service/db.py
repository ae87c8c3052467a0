"""Database expressions shared by the apps."""

from __future__ import annotations

from django.db.models.functions import Now


class DatabaseNow(Now):
    """The database's clock, for timestamps taken inside a transaction (``db_default=DatabaseNow()``).

    PostgreSQL's ``STATEMENT_TIMESTAMP()``, as Django's ``Now``; a class of its own because the
    migrations name it.
    """
