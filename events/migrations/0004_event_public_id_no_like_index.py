"""Drop the ``varchar_pattern_ops`` index Django adds beside a unique CharField's index on PostgreSQL.

It serves ``LIKE 'prefix%'`` queries, and nothing queries an event's public id that way (the unique index
answers every lookup by id). Every event inserted took an entry in it at a random place (the ids are
random), so a charge's two events dirtied two more index pages for nothing: about 40 % of a bulk
batch's WAL on a freshly checkpointed database (docs/PERFORMANCE.md).
"""

from django.db import migrations

DROP = """
DO $$
DECLARE name text;
BEGIN
    FOR name IN SELECT indexname FROM pg_indexes
                 WHERE tablename = 'events_event' AND indexname LIKE 'events_event_public_id_%_like'
    LOOP
        EXECUTE format('DROP INDEX %I', name);
    END LOOP;
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [("events", "0003_event_commit_order_idx")]

    operations = [
        migrations.RunSQL(
            DROP,
            reverse_sql="CREATE INDEX events_event_public_id_31e4f3d8_like ON events_event (public_id varchar_pattern_ops)",
        )
    ]
