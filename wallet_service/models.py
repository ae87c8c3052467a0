"""The service's own tables (the apps have theirs)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class LsnField(models.Field):
    """A ``pg_lsn`` column: a position in PostgreSQL's write-ahead log."""

    description = "PostgreSQL WAL position (pg_lsn)"

    def db_type(self, connection) -> str:
        return "pg_lsn"


class WritePosition(models.Model):
    """Where the primary's WAL stood after a user's last write request (wallet_service/db_routing.py).

    A replica serves that user's reads only once it has replayed at least this far, so a caller always
    sees its own completed writes. Written only when read replicas are configured.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="+")
    lsn = LsnField()

    def __str__(self) -> str:
        return f"user {self.user_id} wrote at or before {self.lsn}"
