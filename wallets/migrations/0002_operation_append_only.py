"""The ledger is append-only: the database refuses UPDATE and DELETE on wallets_operation."""

from django.db import migrations

POSTGRESQL_FORWARD = """
CREATE FUNCTION wallets_operation_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'wallets_operation is append-only: % refused', TG_OP USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER wallets_operation_append_only BEFORE UPDATE OR DELETE ON wallets_operation
    FOR EACH ROW EXECUTE FUNCTION wallets_operation_append_only();
"""
POSTGRESQL_REVERSE = """
DROP TRIGGER IF EXISTS wallets_operation_append_only ON wallets_operation;
DROP FUNCTION IF EXISTS wallets_operation_append_only();
"""
SQLITE_FORWARD = [
    """CREATE TRIGGER wallets_operation_no_update BEFORE UPDATE ON wallets_operation
       BEGIN SELECT RAISE(ABORT, 'wallets_operation is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER wallets_operation_no_delete BEFORE DELETE ON wallets_operation
       BEGIN SELECT RAISE(ABORT, 'wallets_operation is append-only: DELETE refused'); END""",
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS wallets_operation_no_update",
    "DROP TRIGGER IF EXISTS wallets_operation_no_delete",
]


def run(statements_by_vendor):
    def apply(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement, params=None)

    return apply


class Migration(migrations.Migration):
    dependencies = [("wallets", "0001_initial")]

    operations = [
        migrations.RunPython(
            run({"postgresql": [POSTGRESQL_FORWARD], "sqlite": SQLITE_FORWARD}),
            run({"postgresql": [POSTGRESQL_REVERSE], "sqlite": SQLITE_REVERSE}),
        ),
    ]
