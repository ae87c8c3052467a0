"""GET /metrics: Prometheus text with request, latency and database metrics; the optional bearer token."""

from __future__ import annotations

import pytest
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from wallet_service.tests.utils import assert_problem

TOKEN = "metrics-token-0123456789abcdef"


def families(response) -> dict:
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def sample_value(family, **labels) -> float:
    return sum(
        sample.value
        for sample in family.samples
        if sample.name.endswith("_total") and labels.items() <= sample.labels.items()
    )


@pytest.mark.django_db
def test_metrics_are_prometheus_text_with_requests_latency_and_database(api_client):
    api_client.get("/status")
    api_client.get("/status/")
    response = api_client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    found = families(response)
    # Requests by view (never by raw path: wallet tokens would make one series per wallet) and latency.
    assert sample_value(found["django_http_responses_total_by_status_view_method"], view="status", status="200") >= 2
    assert found["django_http_requests_latency_seconds_by_view_method"].type == "histogram"
    # The database wrapper counts the status check's query and the connection it opened.
    assert sample_value(found["django_db_execute"], vendor="postgresql") >= 2
    assert "django_db_new_connections" in found
    assert "django_db_query_duration_seconds" in found
    # Business counters exist from the start, at zero or more.
    assert {"wallet_deposits", "wallet_charges", "wallet_deposited_amount", "wallet_charged_amount"} <= found.keys()


def test_the_database_wrapper_keeps_persistent_connections_and_health_checks():
    database = connection.settings_dict
    assert database["ENGINE"] == "wallet_service.database"  # django_prometheus's backend, counting cheaper
    assert connection.vendor == "postgresql"
    assert (database["CONN_MAX_AGE"], database["CONN_HEALTH_CHECKS"]) == (600, True)


@pytest.mark.django_db
def test_without_a_token_metrics_are_closed_unless_made_public(api_client, settings):
    settings.WALLET_SERVICE_METRICS_TOKEN = None
    settings.WALLET_SERVICE_METRICS_PUBLIC = False
    for path in ("/metrics", "/metrics/"):
        closed = api_client.get(path)
        assert_problem(closed, 403, "permission_denied")
        assert "WALLET_SERVICE_METRICS_TOKEN" in closed.json()["detail"]
        assert b"django_http" not in closed.content
    assert_problem(
        api_client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything-0123456789"), 403, "permission_denied"
    )
    settings.WALLET_SERVICE_METRICS_PUBLIC = True
    assert api_client.get("/metrics").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "not_authenticated"),
        ("Bearer", "not_authenticated"),
        (f"Token {TOKEN}", "not_authenticated"),
        ("Bearer wrong-token-0123456789abcdef", "authentication_failed"),
        (f"Bearer {TOKEN}x", "authentication_failed"),
        (f"Bearer {TOKEN[:-1]}", "authentication_failed"),
    ],
)
def test_with_a_token_metrics_need_it_as_a_bearer_credential(api_client, settings, authorization, code):
    settings.WALLET_SERVICE_METRICS_TOKEN = TOKEN
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = api_client.get("/metrics", **headers)
    assert_problem(response, 401, code)
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"django_http" not in response.content


@pytest.mark.django_db
def test_with_the_right_token_metrics_are_served(api_client, settings):
    settings.WALLET_SERVICE_METRICS_TOKEN = TOKEN
    for scheme in ("Bearer", "bearer"):
        response = api_client.get("/metrics/", HTTP_AUTHORIZATION=f"{scheme} {TOKEN}")
        assert response.status_code == 200
        assert "wallet_deposits" in families(response)


@pytest.mark.django_db
def test_metrics_only_answer_get_and_head(api_client):
    assert api_client.head("/metrics").status_code == 200
    response = api_client.post("/metrics", {})
    assert_problem(response, 405, "method_not_allowed")
    assert response["Allow"] == "GET, HEAD"


@pytest.mark.django_db
def test_each_statement_is_counted_timed_and_its_error_counted_by_type():
    from django.db import ProgrammingError, transaction
    from django_prometheus.db import errors_total, execute_total, query_duration_seconds

    def counts():
        return (
            execute_total.labels("default", "postgresql")._value.get(),
            query_duration_seconds.labels("default", "postgresql")._sum.get(),
            # counted under psycopg's exception type, below Django's wrapping in ProgrammingError
            errors_total.labels("default", "postgresql", "UndefinedColumn")._value.get(),
        )

    executed, timed, errors = counts()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.01)")
        with pytest.raises(ProgrammingError), transaction.atomic():
            cursor.execute("SELECT no_such_column FROM pg_class")
    after = counts()
    assert after[0] >= executed + 2  # and the savepoint's statements
    assert after[1] >= timed + 0.01
    assert after[2] == errors + 1


def request_samples() -> dict[tuple[str, tuple], float]:
    """The request metrics' samples now, by name and sorted labels (in-process: this test process's registry)."""
    from prometheus_client import REGISTRY

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in REGISTRY.collect()
        if family.name.startswith("django_http")
        for sample in family.samples
    }


@pytest.mark.django_db
def test_each_request_is_counted_by_method_status_view_and_latency_once(api_client, monkeypatch):
    from rest_framework.test import APIClient

    from wallet_service.api.views import StatusApi

    def fail(self, request):
        raise RuntimeError("boom")

    before = request_samples()
    api_client.get("/wallet/list")  # 401
    api_client.get("/no/such/path")  # 404: no view
    api_client.generic("BREW", "/status")  # 405
    monkeypatch.setattr(StatusApi, "get", fail)
    assert APIClient(raise_request_exception=False).get("/status").status_code == 500
    after = request_samples()

    def moved(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert moved("django_http_requests_total_by_method_total", method="GET") == 3
    assert moved("django_http_requests_total_by_method_total", method="<invalid method>") == 1
    responses = "django_http_responses_total_by_status_view_method_total"
    assert moved(responses, status="401", view="wallet-list", method="GET") == 1
    assert moved(responses, status="404", view="<unnamed view>", method="GET") == 1
    assert moved(responses, status="405", view="status", method="<invalid method>") == 1
    assert moved(responses, status="500", view="status", method="GET") == 1
    latency = "django_http_requests_latency_seconds_by_view_method_count"
    assert moved(latency, view="status", method="GET") == 1  # once, even when the view raised
    assert moved(latency, view="wallet-list", method="GET") == 1
    assert moved("django_http_exceptions_total_by_type_total", type="RuntimeError") == 1
    # The metrics no dashboard, alert or document reads are not written at all.
    names = {name for name, _ in after}
    assert not {name for name in names if "before_middlewares" in name or "by_transport" in name or "bytes" in name}
