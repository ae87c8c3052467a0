"""`migrate_locked`: deploys that start together migrate one after the other, never at once."""

from __future__ import annotations

import io
import threading
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections

from accounts.management.commands.migrate_locked import MIGRATION_LOCK_KEY

pytestmark = pytest.mark.django_db(transaction=True)


class LockHolder(threading.Thread):
    """Holds the migration lock on its own connection, as another deploy's migration would."""

    def __init__(self):
        super().__init__()
        self.held = threading.Event()
        self.release = threading.Event()

    def run(self):
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
                self.held.set()
                self.release.wait(timeout=30)
                cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_KEY])
        finally:
            connections.close_all()


def advisory_lock_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return cursor.fetchone()[0]


def test_migrate_waits_for_a_migration_in_progress_then_finds_nothing_to_apply(capsys):
    holder = LockHolder()
    holder.start()
    assert holder.held.wait(timeout=10)
    errors: list[BaseException] = []

    def migrate():
        try:
            call_command("migrate_locked")
        except BaseException as error:  # surfaced below
            errors.append(error)
        finally:
            connections.close_all()

    migrating = threading.Thread(target=migrate)
    migrating.start()
    deadline = time.monotonic() + 10
    while advisory_lock_waiters() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert advisory_lock_waiters() == 1, "migrate_locked should be queued behind the lock"
    assert migrating.is_alive()

    holder.release.set()
    holder.join(timeout=10)
    migrating.join(timeout=30)
    assert not migrating.is_alive() and not errors, errors
    assert "No migrations to apply" in capsys.readouterr().out
    assert advisory_lock_waiters() == 0


def test_migrate_gives_up_with_a_clear_error_when_the_lock_is_held_too_long():
    holder = LockHolder()
    holder.start()
    try:
        assert holder.held.wait(timeout=10)
        with pytest.raises(CommandError, match="Another migration held the lock for more than 1 s"):
            call_command("migrate_locked", "--lock-timeout", "1", stdout=io.StringIO())
    finally:
        holder.release.set()
        holder.join(timeout=10)


def test_the_lock_is_released_after_migrating():
    call_command("migrate_locked", stdout=io.StringIO())
    with connections["default"].cursor() as cursor:
        # This database's: another test run on the same server (another pytest-xdist worker) may hold its own.
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        assert cursor.fetchone()[0] == 0


def test_behind_pgbouncer_it_refuses_to_migrate_and_says_to_connect_directly(settings):
    settings.WALLET_SERVICE_DATABASE_POOLER = "pgbouncer"
    with pytest.raises(CommandError, match="must connect to PostgreSQL directly"):
        call_command("migrate_locked", stdout=io.StringIO())
