from __future__ import annotations

from decimal import Decimal

import pytest

from wallet_service.tests.utils import assert_max_queries, assert_problem
from wallets.tests.factories import WalletFactory


@pytest.mark.django_db
def test_info_returns_the_wallet_and_its_balance(client_api):
    wallet = WalletFactory(owner=client_api.user, balance=Decimal("150"))
    response = client_api.get(f"/wallet/info/{wallet.token}")
    assert response.status_code == 200
    assert response.json() == {"wallet": wallet.token, "balance": "150.00", "held": "0.00", "available": "150.00"}
    assert client_api.get(f"/wallet/info/{wallet.token}/").json() == response.json()


@pytest.mark.django_db
def test_info_of_another_users_wallet_is_404(client_api, company_api):
    others = WalletFactory(owner=company_api.user)
    assert_problem(client_api.get(f"/wallet/info/{others.token}"), 404, "not_found")


@pytest.mark.django_db
@pytest.mark.parametrize("token", ["unknown", "a" * 200, "bad%00token", "%F0%9F%92%B0", "tok.en"])
def test_info_of_a_token_that_is_not_a_wallet_is_404(client_api, token):
    assert_problem(client_api.get(f"/wallet/info/{token}"), 404, "not_found")


@pytest.mark.django_db
def test_info_requires_authentication_before_anything_else(api_client):
    assert_problem(api_client.get("/wallet/info/whatever"), 401, "not_authenticated")


@pytest.mark.django_db
def test_list_returns_own_wallets_oldest_first(client_api):
    first = WalletFactory(owner=client_api.user, balance=Decimal("1"))
    second = WalletFactory(owner=client_api.user, balance=Decimal("2.5"))
    WalletFactory()  # someone else's
    response = client_api.get("/wallet/list")
    assert response.status_code == 200
    assert response.json() == [
        {"wallet": first.token, "balance": "1.00", "held": "0.00", "available": "1.00"},
        {"wallet": second.token, "balance": "2.50", "held": "0.00", "available": "2.50"},
    ]


@pytest.mark.django_db
def test_list_is_empty_for_a_new_user(company_api):
    assert company_api.get("/wallet/list").json() == []


@pytest.mark.django_db
def test_list_costs_two_queries_however_many_wallets(client_api):
    for _ in range(20):
        WalletFactory(owner=client_api.user)
    with assert_max_queries(2):
        assert len(client_api.get("/wallet/list").json()) == 20


@pytest.mark.django_db
def test_info_costs_two_queries(client_api):
    wallet = WalletFactory(owner=client_api.user)
    with assert_max_queries(2):
        assert client_api.get(f"/wallet/info/{wallet.token}").status_code == 200
