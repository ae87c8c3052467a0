"""Deployment checks of the service's own settings, run by ``manage.py check --deploy``."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

W001 = checks.Warning(
    "WALLET_SERVICE_METRICS_PUBLIC is True: /metrics (request counts, money moved) is open to anyone "
    "who can reach the service.",
    hint="Set WALLET_SERVICE_METRICS_TOKEN instead and give Prometheus the same token as a bearer credential.",
    id="wallet_service.W001",
)


@checks.register(checks.Tags.security, deploy=True)
def check_metrics_token(app_configs, **kwargs):
    return [W001] if settings.WALLET_SERVICE_METRICS_PUBLIC else []
