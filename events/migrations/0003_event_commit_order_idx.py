"""The fan-out's index on every owner's events in commit order.

A plain CREATE INDEX, inside the migration's transaction: CREATE INDEX CONCURRENTLY waits for every
transaction older than it, and migrate_locked's second runner holds one open while it waits for the
migration lock, so the two deadlocked (deploy-check step 6: two migrate containers at once). The
table is new in this release; an index built on a large table later should be built by hand.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0002_webhooks"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="event",
            index=models.Index(fields=["xid", "id"], name="event_commit_order_idx"),
        ),
    ]
