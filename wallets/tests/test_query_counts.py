"""The fewest SQL statements per request on the hot endpoints, pinned (see docs/PERFORMANCE.md).

These tests run with ``transaction=True``: the service's ``atomic()`` is then the outermost block, as
in production, so the counts are the statements a request really sends (no test savepoints; Django
counts BEGIN and COMMIT, each a round trip to the database). The statement counted first is always
the authentication's single SELECT, which writes nothing.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from knox.models import AuthToken

from wallets import services
from wallets.tests.factories import DepositFactory, WalletFactory, current_balance

pytestmark = pytest.mark.django_db(transaction=True)

WRITE_RE = re.compile(r"\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


@pytest.fixture
def client_wallet(client_api):
    return WalletFactory(owner=client_api.user, balance=Decimal("100.00"))


def test_a_charge_takes_two_statements_once_the_process_knows_the_merchant_wallet(
    company_api, client_wallet, django_assert_max_num_queries
):
    WalletFactory(owner=company_api.user)
    services._merchant_wallets.clear()
    # The company's first charge in this process: authenticate, BEGIN, lock the charged wallet, its writes
    # (debit, credit, the operation and its events), COMMIT.
    with django_assert_max_num_queries(5):
        response = company_api.post("/wallet/charge", {"wallet": client_wallet.token, "amount": "10.00"})
    assert response.status_code == 200, response.content
    assert response.json()["balance"] == "10.00"
    # Every later one: authenticate, then the whole charge in one statement (autocommit: no BEGIN, no COMMIT).
    with django_assert_max_num_queries(2):
        response = company_api.post("/wallet/charge", {"wallet": client_wallet.token, "amount": "10.00"})
    assert response.status_code == 200, response.content
    assert response.json()["balance"] == "20.00"
    assert current_balance(client_wallet) == Decimal("80.00")


def test_an_idempotent_charge_takes_at_most_ten_statements(company_api, client_wallet, django_assert_max_num_queries):
    # BEGIN, authenticate, the key's claim (its lock timeout set and reset, a savepoint around the INSERT), the
    # charge in one statement (13 before: SAVEPOINT, lock, writes, RELEASE), store the answer, COMMIT
    WalletFactory(owner=company_api.user)
    company_api.post("/wallet/charge", {"wallet": client_wallet.token, "amount": "1.00"})  # the first, as above
    with django_assert_max_num_queries(10):
        response = company_api.post(
            "/wallet/charge", {"wallet": client_wallet.token, "amount": "10.00"}, HTTP_IDEMPOTENCY_KEY="once"
        )
    assert response.status_code == 200, response.content
    assert current_balance(client_wallet) == Decimal("89.00")


def test_deposit_takes_at_most_six_statements(client_api, client_wallet, django_assert_max_num_queries):
    # authenticate, BEGIN, lock the wallet, add to its balance, insert the operation, COMMIT
    with django_assert_max_num_queries(6):
        response = client_api.post("/wallet/deposit", {"wallet": client_wallet.token, "amount": "5.00"})
    assert response.status_code == 200, response.content
    assert response.json()["balance"] == "105.00"


def test_info_takes_at_most_two_statements(client_api, client_wallet, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):
        response = client_api.get(f"/wallet/info/{client_wallet.token}")
    assert response.json() == {
        "wallet": client_wallet.token,
        "balance": "100.00",
        "held": "0.00",
        "available": "100.00",
    }


def test_list_takes_at_most_two_statements_whatever_the_number_of_wallets(
    client_api, client_wallet, django_assert_max_num_queries
):
    for _ in range(20):
        WalletFactory(owner=client_api.user)
    with django_assert_max_num_queries(2):
        response = client_api.get("/wallet/list")
    assert len(response.json()) == 21


def test_history_page_takes_two_statements_whatever_its_length(
    client_api, client_wallet, company_user, django_assert_max_num_queries
):
    # authenticate; read the page (the caller's wallet and both sides of the ledger in one statement)
    merchant_wallet = WalletFactory(owner=company_user)
    DepositFactory.create_batch(60, target=client_wallet)
    for _ in range(60):
        services.wallet_charge(
            merchant=company_user, wallet_token=client_wallet.token, amount=Decimal("0.01"), summary=""
        )
    with django_assert_max_num_queries(2):
        response = client_api.get(f"/wallet/history/{client_wallet.token}?limit=100")
    body = response.json()
    assert len(body) == 100
    assert {item["target__token"] for item in body} == {client_wallet.token, "…" + merchant_wallet.token[-4:]}
    assert "next" in response["Link"]


@pytest.mark.parametrize("method, path", [("get", "/wallet/info/{token}"), ("get", "/wallet/list"),
                                          ("get", "/wallet/history/{token}")])  # fmt: skip
def test_authentication_writes_nothing(client_api, client_wallet, method, path):
    before = AuthToken.objects.values_list("expiry", "user__last_login").get(user=client_api.user)
    with CaptureQueriesContext(connection) as captured:
        for _ in range(3):
            response = getattr(client_api, method)(path.format(token=client_wallet.token))
            assert response.status_code == 200, response.content
    writes = [query["sql"] for query in captured.captured_queries if WRITE_RE.match(query["sql"])]
    assert writes == []
    # knox would refresh the key's expiry on use (AUTO_REFRESH); this service never does.
    assert AuthToken.objects.values_list("expiry", "user__last_login").get(user=client_api.user) == before
