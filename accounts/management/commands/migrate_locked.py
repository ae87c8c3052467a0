"""Apply migrations under a PostgreSQL advisory lock, so that two deploys never migrate at once.

The compose file runs this once per deploy, in a one-off ``migrate`` service that the web service
waits for. The lock covers what compose cannot see: two hosts, two ``docker compose up`` or a
manual run racing on one database. Plain ``migrate`` in both would apply the same migration twice
and one would fail half-way; here the second waits for the lock, then finds nothing to apply.

``--grant-runtime-role ROLE`` then runs ``grant_runtime_role ROLE`` under the same lock, so the
runtime role's privileges always match the schema just migrated (``none`` or empty: skip).
"""

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections, transaction

# One key for this service's migrations, shared by every process that migrates its database.
MIGRATION_LOCK_KEY = int.from_bytes(b"wallet:m", "big")


class Command(BaseCommand):
    help = "Run `migrate` while holding a database-wide advisory lock (PostgreSQL's pg_advisory_lock)."

    def add_arguments(self, parser):
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias (default: %(default)s).")
        parser.add_argument(
            "--lock-timeout",
            type=int,
            default=600,
            help="Seconds to wait for another migration to finish before giving up (default: %(default)s).",
        )
        parser.add_argument(
            "--grant-runtime-role",
            default="",
            metavar="ROLE",
            help="After migrating, grant ROLE data access (grant_runtime_role); 'none' or empty: skip.",
        )

    def handle(self, *args, database, lock_timeout, grant_runtime_role, **options):
        connection = connections[database]
        if database == DEFAULT_DB_ALIAS and getattr(settings, "WALLET_SERVICE_DATABASE_POOLER", None):
            # Behind transaction pooling, the session that took the lock is not the one that releases it.
            raise CommandError(
                "WALLET_SERVICE_DATABASE_POOLER is set: migrations hold a session-level advisory lock and must "
                "connect to PostgreSQL directly, not through PgBouncer in transaction pooling mode "
                "(point DATABASE_URL at PostgreSQL and leave WALLET_SERVICE_DATABASE_POOLER empty)"
            )
        role = "" if grant_runtime_role.strip().lower() in ("", "none") else grant_runtime_role.strip()
        self.stdout.write("Waiting for the migration lock...")
        try:
            # A session-level lock taken in a transaction outlives its commit; SET LOCAL bounds the wait
            # without leaving a lock timeout on the migrations themselves.
            with transaction.atomic(using=database), connection.cursor() as cursor:
                cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{lock_timeout}s"])
                cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
        except OperationalError as error:
            raise CommandError(f"Another migration held the lock for more than {lock_timeout} s: {error}") from None
        try:
            call_command("migrate", database=database, interactive=False, verbosity=options["verbosity"])
            if role:
                call_command("grant_runtime_role", role, database=database, stdout=self.stdout)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_KEY])
