"""``GET /metrics``: Prometheus metrics, optionally behind a bearer token.

With ``WALLET_SERVICE_METRICS_TOKEN`` set, a scrape must send ``Authorization: Bearer <token>``
(Prometheus: ``authorization: {credentials: <token>}``). Without a token the endpoint is closed
(403) unless ``WALLET_SERVICE_METRICS_PUBLIC=True`` opens it to anyone who can reach the service, and
``manage.py check --deploy`` warns about that (wallet_service/checks.py). django-prometheus renders
the metrics: every worker's, added up, when gunicorn runs them in multiprocess mode; the webhook
delivery metrics, read from the database, follow them.
"""

from __future__ import annotations

import hmac
import json

from django.conf import settings
from django.http import HttpResponse
from django_prometheus.exports import ExportToDjangoView

from events.webhooks import metrics as webhook_metrics
from wallet_service.api.problems import PROBLEM_CONTENT_TYPE, problem_body

AUTHENTICATE = 'Bearer realm="metrics"'


def _problem(code: str, detail: str, headers: dict[str, str]) -> HttpResponse:
    body = problem_body(code, detail)
    return HttpResponse(json.dumps(body), status=body["status"], content_type=PROBLEM_CONTENT_TYPE, headers=headers)


def metrics_view(request) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return _problem("method_not_allowed", f'Method "{request.method}" not allowed.', {"Allow": "GET, HEAD"})
    expected = settings.WALLET_SERVICE_METRICS_TOKEN
    if expected is None and not settings.WALLET_SERVICE_METRICS_PUBLIC:
        return _problem(
            "permission_denied",
            "/metrics is closed: set WALLET_SERVICE_METRICS_TOKEN (and scrape with it as a bearer token), "
            "or WALLET_SERVICE_METRICS_PUBLIC=True to open it.",
            {},
        )
    if expected is not None:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return _problem(
                "not_authenticated", "Send Authorization: Bearer <metrics token>.", {"WWW-Authenticate": AUTHENTICATE}
            )
        if not hmac.compare_digest(presented.strip().encode(), expected.encode()):
            return _problem("authentication_failed", "The metrics token is wrong.", {"WWW-Authenticate": AUTHENTICATE})
    response = ExportToDjangoView(request)
    # Webhook delivery happens in the workers: its metrics are read from the database (events.webhooks.metrics).
    response.content += webhook_metrics.render()
    return response
