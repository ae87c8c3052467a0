"""Operation.xid declared on the model: the column exists since 0004; only Django's state learns of it."""

from django.db import migrations

import wallet_service.db


class Migration(migrations.Migration):
    dependencies = [("wallets", "0005_holds_refunds")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="operation",
                    name="xid",
                    field=wallet_service.db.TransactionIdField(
                        db_default=wallet_service.db.CurrentTransactionId(), editable=False
                    ),
                ),
            ],
        ),
    ]
