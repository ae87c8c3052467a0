"""Fewer index entries per webhook delivery: each delivery is written three times (made, leased, delivered),
each time with an entry in every index whose rows it belongs to.

- The endpoint foreign key's own index goes: webhook_delivery_once (endpoint, event) serves every lookup
  by endpoint (deleting one, failing a disabled one's pending deliveries).
- webhook_delivery_done_idx holds only delivered rows (it had every row, NULLs included), and failed rows
  get webhook_delivery_failed_idx: the two halves of purge_webhook_deliveries' condition.

Plain CREATE INDEX, as in 0003: it blocks writes to the deliveries table while it builds (seconds for
the 7 days of deliveries the purge keeps at bench rates); build by hand CONCURRENTLY first on a large table.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0004_event_public_id_no_like_index'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='webhookdelivery',
            name='webhook_delivery_done_idx',
        ),
        migrations.AlterField(
            model_name='webhookdelivery',
            name='endpoint',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='events.webhookendpoint'),
        ),
        migrations.AddIndex(
            model_name='webhookdelivery',
            index=models.Index(condition=models.Q(('status', 'delivered')), fields=['delivered_at'], name='webhook_delivery_done_idx'),
        ),
        migrations.AddIndex(
            model_name='webhookdelivery',
            index=models.Index(condition=models.Q(('status', 'failed')), fields=['last_attempt_at'], name='webhook_delivery_failed_idx'),
        ),
    ]
