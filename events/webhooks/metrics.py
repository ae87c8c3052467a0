"""Webhook delivery metrics, read from the database at each scrape of /metrics.

The workers that deliver are other processes (other containers, under compose) than the web server
that answers /metrics, so their in-process counters could not be scraped there. Instead:

- ``webhook_delivery_attempts_total{outcome}``: attempts by outcome (``delivered``, ``http_error``,
  ``network_error``, ``refused``), counted by the workers in ``events_webhookattemptcount``;
- ``webhook_deliveries_pending``: deliveries waiting for a first attempt or a retry (the queue depth);
- ``webhook_oldest_undelivered_event_age_seconds``: how long ago the oldest event still owed to an
  endpoint was created (pending deliveries, and events not yet fanned out); 0 when none is.

If the database cannot be read, these are left out of the scrape (the rest is still served).
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

logger = logging.getLogger(__name__)

OUTCOMES = ("delivered", "http_error", "network_error", "refused")

STATE = """
SELECT (SELECT count(*) FROM events_webhookdelivery WHERE status = 'pending'),
       GREATEST(
           (SELECT EXTRACT(EPOCH FROM now() - min(e.created_at))
              FROM events_webhookdelivery d JOIN events_event e ON e.id = d.event_id
             WHERE d.status = 'pending'),
           (SELECT EXTRACT(EPOCH FROM now() - e.created_at)
              FROM events_event e
             WHERE (e.xid, e.id) > (SELECT event_xid, event_id FROM events_webhookfanout WHERE id = 1)
               AND EXISTS (SELECT 1 FROM events_webhookendpoint w WHERE w.owner_id = e.owner_id)
             ORDER BY e.xid, e.id LIMIT 1),
           0)
"""


class WebhookCollector:
    def collect(self):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT outcome, count FROM events_webhookattemptcount")
                counts = dict(cursor.fetchall())
                cursor.execute(STATE)
                pending, oldest = cursor.fetchone()
        except DatabaseError as error:
            logger.warning("webhook metrics unavailable", extra={"error": str(error)[:300]})
            return
        attempts = CounterMetricFamily(
            "webhook_delivery_attempts", "Webhook delivery attempts, by outcome.", labels=["outcome"]
        )
        for outcome in sorted(set(OUTCOMES) | set(counts)):
            attempts.add_metric([outcome], counts.get(outcome, 0))
        yield attempts
        yield GaugeMetricFamily(
            "webhook_deliveries_pending", "Webhook deliveries waiting for an attempt or a retry.", value=pending
        )
        yield GaugeMetricFamily(
            "webhook_oldest_undelivered_event_age_seconds",
            "Age of the oldest event not yet delivered to an endpoint that subscribed to it (0: none).",
            value=float(oldest or 0),
        )


registry = CollectorRegistry(auto_describe=False)
registry.register(WebhookCollector())


def render() -> bytes:
    return generate_latest(registry)
