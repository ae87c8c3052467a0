"""Settings of the workers the webhook tests start: the service's own, with delivery's delays in tenths of
seconds instead of minutes (events/webhooks/delivery.py, DeliveryPolicy), so retries and expired leases
happen within a test."""

from wallet_service.settings import *  # noqa: F403

WALLET_SERVICE_WEBHOOK_DELIVERY = {"retry_base": 0.2, "retry_max": 1.0, "timeout": 2.0, "lease": 3.0, "poll": 0.2}
