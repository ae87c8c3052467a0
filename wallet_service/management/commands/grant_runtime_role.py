"""``manage.py grant_runtime_role ROLE``: give the API's runtime role data access, and nothing more.

Run as the role that owns the tables (the one migrations run as), after migrating; ``migrate_locked
--grant-runtime-role ROLE`` does both. The runtime role (DATABASE_URL of web and worker) gets:

- CONNECT on the database, USAGE on schema ``public``;
- SELECT, INSERT, UPDATE, DELETE on every table, USAGE on every sequence — and, through default
  privileges of the owner, on every table and sequence later migrations create;
- but not UPDATE, DELETE or TRUNCATE on the ledger (``wallets_operation``: append-only, besides its
  trigger), nor writes to ``django_migrations``. Revoked again at every run, so a migration that
  re-creates the ledger cannot hand them back.

It never gets DDL: it owns nothing, so it cannot ALTER or DROP a table, a constraint or the ledger's
trigger. The command refuses a role that is a superuser, the owner itself or a member of it, or that
may create objects in ``public`` (PostgreSQL before 15 lets everyone: REVOKE CREATE ON SCHEMA public
FROM PUBLIC first). Idempotent. PostgreSQL only.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from psycopg import sql

LEDGER = "wallets_operation"
READ_ONLY = ("django_migrations",)


def grant_statements(role: str, owner: str, database: str) -> list[sql.Composable]:
    r, o = sql.Identifier(role), sql.Identifier(owner)
    statements = [
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), r),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(r),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(r),
        sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(r),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}"
        ).format(o, r),
        sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT USAGE ON SEQUENCES TO {}").format(o, r),
        sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE ON TABLE {} FROM {}").format(sql.Identifier(LEDGER), r),
    ]
    statements += [
        sql.SQL("REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON TABLE {} FROM {}").format(sql.Identifier(table), r)
        for table in READ_ONLY
    ]
    return statements


class Command(BaseCommand):
    help = "Grant ROLE data access to the service's tables (no UPDATE/DELETE on the ledger, no DDL)."

    def add_arguments(self, parser):
        parser.add_argument("role", help="The runtime role (the user of web's and the worker's DATABASE_URL).")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias (default: %(default)s).")

    def handle(self, *args, role: str, database: str, **options):
        connection = connections[database]
        with transaction.atomic(using=database), connection.cursor() as cursor:
            cursor.execute("SELECT current_user, current_database()")
            owner, database_name = cursor.fetchone()
            cursor.execute(
                "SELECT rolsuper, pg_has_role(%s, current_user, 'MEMBER') FROM pg_roles WHERE rolname = %s",
                [role, role],
            )
            found = cursor.fetchone()
            if found is None:
                raise CommandError(
                    f"role {role!r} does not exist: create it first (CREATE ROLE ... LOGIN PASSWORD ...)"
                )
            superuser, member_of_owner = found
            if superuser or member_of_owner:
                raise CommandError(
                    f"role {role!r} is a superuser, or is (or is a member of) the owner {owner!r}: "
                    "the runtime role must be a separate, unprivileged role"
                )
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [LEDGER])
            if not cursor.fetchone()[0]:
                raise CommandError(f"table {LEDGER} does not exist: migrate first")
            for statement in grant_statements(role, owner, database_name):
                cursor.execute(statement.as_string(connection.connection))
            cursor.execute("SELECT has_schema_privilege(%s, 'public', 'CREATE')", [role])
            if cursor.fetchone()[0]:
                raise CommandError(
                    f"role {role!r} may create objects in schema public (PostgreSQL before 15 lets everyone): "
                    "run REVOKE CREATE ON SCHEMA public FROM PUBLIC (and from the role) first"
                )
        self.stdout.write(
            f"Granted {role} data access in {database_name} (owner {owner}); no UPDATE/DELETE on {LEDGER}, no DDL."
        )
