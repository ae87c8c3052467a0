"""GET /wallet/list: the caller's wallets, oldest first, keyset-paginated with a Link header."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest

from wallet_service.tests.utils import assert_max_queries, assert_problem
from wallets.tests.factories import WalletFactory
from wallets.tests.test_history_apis import next_url, walk


@pytest.mark.django_db
def test_default_page_is_100_oldest_first_with_a_link_to_the_next(client_api):
    wallets = WalletFactory.create_batch(150, owner=client_api.user)
    WalletFactory.create_batch(3)  # someone else's
    response = client_api.get("/wallet/list")
    assert [item["wallet"] for item in response.json()] == [wallet.token for wallet in wallets[:100]]
    url = next_url(response)
    assert url.startswith("http://testserver/wallet/list?")
    assert set(parse_qs(urlsplit(url).query)) == {"cursor"}
    rest = client_api.get(url)
    assert [item["wallet"] for item in rest.json()] == [wallet.token for wallet in wallets[100:]]
    assert next_url(rest) is None


@pytest.mark.django_db
def test_following_next_visits_every_wallet_once_and_keeps_the_limit(client_api):
    wallets = WalletFactory.create_batch(7, owner=client_api.user, balance=Decimal("1.50"))
    first = client_api.get("/wallet/list?limit=2")
    assert parse_qs(urlsplit(next_url(first)).query)["limit"] == ["2"]
    items = walk(client_api, "/wallet/list?limit=2")
    assert [item["wallet"] for item in items] == [wallet.token for wallet in wallets]
    assert {item["balance"] for item in items} == {"1.50"}


@pytest.mark.django_db
def test_a_full_page_costs_two_queries(client_api):
    WalletFactory.create_batch(30, owner=client_api.user)
    with assert_max_queries(2):  # token+user, the page with its pending credits
        assert len(client_api.get("/wallet/list?limit=1000").json()) == 30


@pytest.mark.django_db
@pytest.mark.parametrize("limit", ["0", "1001", "-1", "x", "1.5", ""])
def test_a_limit_outside_1_to_1000_is_refused(client_api, limit):
    assert (
        "limit" in assert_problem(client_api.get("/wallet/list", {"limit": limit}), 400, "validation_error")["errors"]
    )


@pytest.mark.django_db
def test_a_cursor_of_another_user_or_of_the_history_is_refused(client_api, company_api):
    WalletFactory.create_batch(3, owner=company_api.user)
    cursor = parse_qs(urlsplit(next_url(company_api.get("/wallet/list?limit=1"))).query)["cursor"][0]
    assert company_api.get("/wallet/list", {"cursor": cursor}).status_code == 200
    response = client_api.get("/wallet/list", {"cursor": cursor})
    assert "cursor" in assert_problem(response, 400, "validation_error")["errors"]
    wallet = WalletFactory(owner=client_api.user)
    response = client_api.get(f"/wallet/history/{wallet.token}", {"cursor": cursor})
    assert "cursor" in assert_problem(response, 400, "validation_error")["errors"]
    assert_problem(client_api.get("/wallet/list", {"cursor": "garbage"}), 400, "validation_error")
