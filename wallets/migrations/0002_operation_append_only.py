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


def run(statement):
    def apply(apps, schema_editor):
        schema_editor.execute(statement, params=None)

    return apply


class Migration(migrations.Migration):
    dependencies = [("wallets", "0001_initial")]

    operations = [
        migrations.RunPython(
            run(POSTGRESQL_FORWARD),
            run(POSTGRESQL_REVERSE),
        ),
    ]
