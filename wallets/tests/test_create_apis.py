from __future__ import annotations

import re

import pytest

from wallet_service.tests.utils import assert_max_queries, assert_problem
from wallets.models import Wallet


@pytest.mark.django_db
def test_create_returns_a_new_wallet_with_zero_balance(client_api):
    response = client_api.post("/wallet/create", {}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body == {"wallet": body["wallet"], "balance": "0.00", "held": "0.00", "available": "0.00"}
    wallet = Wallet.objects.get()
    assert wallet.token == body["wallet"]
    assert wallet.owner == client_api.user


@pytest.mark.django_db
def test_wallet_tokens_are_url_safe_unique_and_carry_at_least_128_random_bits(client_api):
    tokens = {client_api.post("/wallet/create", {}, format="json").json()["wallet"] for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        # 32 characters of the base64url alphabet = 192 bits.
        assert re.fullmatch(r"[A-Za-z0-9_-]{32}", token)


@pytest.mark.django_db
def test_create_accepts_an_empty_body(client_api):
    response = client_api.generic("POST", "/wallet/create", data="", content_type="application/json")
    assert response.status_code == 201


@pytest.mark.django_db
def test_a_company_has_at_most_one_wallet(company_api):
    assert company_api.post("/wallet/create", {}, format="json").status_code == 201
    assert_problem(company_api.post("/wallet/create", {}, format="json"), 409, "wallet_limit_reached")
    assert Wallet.objects.count() == 1


@pytest.mark.django_db
def test_clients_are_unlimited_by_default(client_api):
    for _ in range(12):
        assert client_api.post("/wallet/create", {}, format="json").status_code == 201


@pytest.mark.django_db
def test_clients_are_held_to_the_configured_limit(settings, client_api):
    settings.WALLET_SERVICE_MAX_WALLETS_BY_CLIENT = 2
    assert client_api.post("/wallet/create", {}, format="json").status_code == 201
    assert client_api.post("/wallet/create", {}, format="json").status_code == 201
    assert_problem(client_api.post("/wallet/create", {}, format="json"), 409, "wallet_limit_reached")
    assert Wallet.objects.filter(owner=client_api.user).count() == 2


@pytest.mark.django_db
def test_create_requires_authentication(api_client):
    assert_problem(api_client.post("/wallet/create", {}, format="json"), 401, "not_authenticated")
    assert not Wallet.objects.exists()


@pytest.mark.django_db
def test_create_costs_few_queries(client_api):
    with assert_max_queries(2):
        assert client_api.post("/wallet/create", {}, format="json").status_code == 201
