"""Token authentication: expiry, bad headers, and the cost of authenticating a request."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts.tests.factories import ClientFactory
from wallet_service.tests.utils import assert_problem


def with_header(value: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=value)
    return api


@pytest.mark.django_db
def test_token_expires_after_the_configured_hours(settings, api_client):
    settings.REST_KNOX = {**settings.REST_KNOX, "TOKEN_TTL": timedelta(hours=0.5)}
    user = ClientFactory().user
    before = timezone.now()
    response = api_client.post("/client/login", {"email": user.email, "password": "s3cure-Passw0rd"}, format="json")
    token = response.json()["token"]
    stored = AuthToken.objects.get(user=user)
    assert before + timedelta(minutes=30) <= stored.expiry <= timezone.now() + timedelta(minutes=30)
    assert with_header(f"Token {token}").get("/wallet/list").status_code == 200

    AuthToken.objects.filter(pk=stored.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    refused = with_header(f"Token {token}").get("/wallet/list")
    assert_problem(refused, 401, "authentication_failed")
    assert refused["WWW-Authenticate"] == "Token"
    assert not AuthToken.objects.filter(pk=stored.pk).exists()


@pytest.mark.django_db
def test_missing_token_is_not_authenticated(api_client):
    response = api_client.get("/wallet/list")
    assert_problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header",
    [
        "Token",
        "Token a b",
        "Token " + "0" * 64,
        "Token " + "f" * 5000,
        "token " + "0" * 64,
        "Token ÿÿÿÿ",
    ],
)
def test_bad_token_is_authentication_failed(header):
    response = with_header(header).get("/wallet/list")
    assert_problem(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.django_db
def test_another_scheme_is_not_authenticated():
    assert_problem(with_header("Bearer abc").get("/wallet/list"), 401, "not_authenticated")


@pytest.mark.django_db
def test_inactive_user_token_is_refused(client_api):
    client_api.user.is_active = False
    client_api.user.save()
    assert_problem(client_api.get("/wallet/list"), 401, "authentication_failed")


@pytest.mark.django_db
def test_authenticating_costs_one_query_and_writes_nothing(client_api, django_assert_num_queries):
    # One query for the token joined with its user, one for the (empty) wallet list.
    with django_assert_num_queries(2) as captured:
        assert client_api.get("/wallet/list").status_code == 200
    assert all(query["sql"].lstrip().upper().startswith("SELECT") for query in captured.captured_queries)
