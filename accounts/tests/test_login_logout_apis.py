from __future__ import annotations

import pytest
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts.tests.factories import PASSWORD, ClientFactory, CompanyFactory
from wallet_service.tests.utils import assert_problem


def login(api_client, path, email, password=PASSWORD):
    return api_client.post(path, {"email": email, "password": password}, format="json")


def with_token(token: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return api


@pytest.mark.django_db
@pytest.mark.parametrize(("factory", "path"), [(ClientFactory, "/client/login"), (CompanyFactory, "/company/login")])
def test_login_issues_a_new_working_token(api_client, factory, path):
    user = factory().user
    response = login(api_client, path, user.email)
    assert response.status_code == 200
    assert set(response.json()) == {"token", "expiry"}
    assert with_token(response.json()["token"]).get("/wallet/list").status_code == 200


@pytest.mark.django_db
def test_login_email_is_case_insensitive(api_client):
    user = ClientFactory(user__email="ana@example.com").user
    response = login(api_client, "/client/login", "ANA@Example.COM")
    assert response.status_code == 200
    user.refresh_from_db()
    assert user.last_login is not None


@pytest.mark.django_db
def test_wrong_email_and_wrong_password_get_the_same_answer(api_client):
    user = ClientFactory().user
    wrong_password = login(api_client, "/client/login", user.email, "wrong-Passw0rd")
    wrong_email = login(api_client, "/client/login", "nobody@example.com")
    first = assert_problem(wrong_password, 400, "invalid_credentials")
    second = assert_problem(wrong_email, 400, "invalid_credentials")
    assert first == second
    assert not AuthToken.objects.exists()


@pytest.mark.django_db
def test_credentials_of_the_other_kind_are_wrong_credentials(api_client):
    client = ClientFactory().user
    company = CompanyFactory().user
    assert_problem(login(api_client, "/company/login", client.email), 400, "invalid_credentials")
    assert_problem(login(api_client, "/client/login", company.email), 400, "invalid_credentials")


@pytest.mark.django_db
def test_an_inactive_account_cannot_log_in(api_client):
    user = ClientFactory(user__is_active=False).user
    assert_problem(login(api_client, "/client/login", user.email), 400, "invalid_credentials")


@pytest.mark.django_db
@pytest.mark.parametrize("body", [{}, {"email": "a@example.com"}, {"password": "x"}, {"email": 5, "password": []}])
def test_login_with_missing_fields_is_a_validation_error(api_client, body):
    assert_problem(api_client.post("/client/login", body, format="json"), 400, "validation_error")


@pytest.mark.django_db
def test_each_login_issues_a_new_key_and_older_keys_stay_valid(api_client):
    user = ClientFactory().user
    first = login(api_client, "/client/login", user.email).json()["token"]
    second = login(api_client, "/client/login", user.email).json()["token"]
    assert first != second
    assert with_token(first).get("/wallet/list").status_code == 200
    assert with_token(second).get("/wallet/list").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(("factory", "kind"), [(ClientFactory, "client"), (CompanyFactory, "company")])
def test_logout_ends_only_the_presented_key(api_client, factory, kind):
    user = factory().user
    first = login(api_client, f"/{kind}/login", user.email).json()["token"]
    second = login(api_client, f"/{kind}/login", user.email).json()["token"]
    response = with_token(first).post(f"/{kind}/logout", {}, format="json")
    assert response.status_code == 204
    assert response.content == b""
    refused = with_token(first).get("/wallet/list")
    assert_problem(refused, 401, "authentication_failed")
    assert refused["WWW-Authenticate"] == "Token"
    assert with_token(second).get("/wallet/list").status_code == 200


@pytest.mark.django_db
def test_logout_without_a_token_is_401(api_client):
    response = api_client.post("/client/logout", {}, format="json")
    assert_problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"
