"""Each ledger row records the id of the transaction that wrote it.

A history walk keeps the snapshot of its first page and, on later pages, shows only the operations
that snapshot could see (``pg_visible_in_snapshot``). A merchant's wallet is credited without its
row lock (the hot-merchant design), so its operations may commit out of (date, id) order; the
snapshot, not the order, is what keeps a walk to exactly the operations that existed when it began.
The column is not part of the Django model: only wallets.selectors reads it, and its default fills it.
"""

from django.db import migrations

ADD = "ALTER TABLE wallets_operation ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id()"
DROP = "ALTER TABLE wallets_operation DROP COLUMN xid"


def run(sql):
    def operation(apps, schema_editor):
        schema_editor.execute(sql)

    return operation


class Migration(migrations.Migration):
    dependencies = [("wallets", "0003_pending_credit")]

    operations = [migrations.RunPython(run(ADD), run(DROP))]
