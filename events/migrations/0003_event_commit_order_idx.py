"""The fan-out's index on every owner's events in commit order, built without locking out writers."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("events", "0002_webhooks"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="event",
            index=models.Index(fields=["xid", "id"], name="event_commit_order_idx"),
        ),
    ]
