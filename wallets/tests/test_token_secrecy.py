"""A wallet token is a credential: no response may hand one to a reader who did not already have it.

Each reader keeps the tokens it knows (its own wallets', and those it sent itself); every response it
gets, body and headers, is searched for every wallet token in the system.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from accounts.tests.factories import ClientFactory, CompanyFactory
from conftest import authenticated_client
from wallets.models import Wallet


class Reader:
    """An authenticated API client that fails on a response carrying a token it never had."""

    def __init__(self, user):
        self.api = authenticated_client(user)
        self.known: set[str] = set()
        self.responses = 0

    def request(self, method: str, path: str, body: dict | None = None):
        # Whatever the reader sends, it had.
        self.known.update(token for token in all_tokens() if token in path or token in json.dumps(body or {}))
        response = self.api.get(path) if method == "GET" else self.api.post(path, body or {}, format="json")
        if response.status_code < 300 and path.startswith("/wallet/create"):
            self.known.add(response.json()["wallet"])
        self.check(response)
        return response

    def check(self, response) -> None:
        self.responses += 1
        text = response.content.decode() + json.dumps(dict(response.headers))
        leaked = {token for token in all_tokens() if token in text} - self.known
        assert not leaked, f"{response.wsgi_request.path} gave away {leaked}"

    def walk_history(self, token: str) -> list[dict]:
        items, path = [], f"/wallet/history/{token}?limit=1"
        while path:
            response = self.request("GET", path)
            assert response.status_code == 200
            items.extend(response.json())
            link = response.headers.get("Link")
            path = link[1 : link.index(">")].removeprefix("http://testserver") if link else None
        return items


def all_tokens() -> set[str]:
    return set(Wallet.objects.values_list("token", flat=True))


@pytest.mark.django_db
def test_no_endpoint_gives_a_reader_a_token_it_did_not_have():
    client = Reader(ClientFactory().user)
    shop = Reader(CompanyFactory().user)
    rival = Reader(CompanyFactory().user)

    client_wallet = client.request("POST", "/wallet/create").json()["wallet"]
    second_wallet = client.request("POST", "/wallet/create").json()["wallet"]
    shop_wallet = shop.request("POST", "/wallet/create").json()["wallet"]
    rival_wallet = rival.request("POST", "/wallet/create").json()["wallet"]
    # The companies learn the client's first wallet the only legitimate way: the client tells them.
    shop.known.add(client_wallet)
    rival.known.add(client_wallet)

    client.request("POST", "/wallet/deposit", {"wallet": client_wallet, "amount": "100.00"})
    rival.request("POST", "/wallet/deposit", {"wallet": rival_wallet, "amount": "50.00"})
    assert shop.request("POST", "/wallet/charge", {"wallet": client_wallet, "amount": "30.00"}).status_code == 200
    assert shop.request("POST", "/wallet/charge", {"wallet": client_wallet, "amount": "900.00"}).status_code == 402
    rival.known.add(shop_wallet)  # the shop sells to the rival too
    assert rival.request("POST", "/wallet/charge", {"wallet": shop_wallet, "amount": "10.00"}).status_code == 200
    assert rival.request("POST", "/wallet/charge", {"wallet": client_wallet, "amount": "5.00"}).status_code == 200
    assert shop.request("POST", "/wallet/charge", {"wallet": rival_wallet, "amount": "1.00"}).status_code == 200

    for reader, wallets in ((client, [client_wallet, second_wallet]), (shop, [shop_wallet]), (rival, [rival_wallet])):
        reader.request("GET", "/wallet/list?limit=1")
        for token in wallets:
            reader.request("GET", f"/wallet/info/{token}")
            assert reader.walk_history(token) or token == second_wallet

    # The attack from the report: the client read the shop's token in its history and a new company
    # charged it. The client's history names the shop without its token, so there is nothing to charge.
    history = client.walk_history(client_wallet)
    assert {item["target__token"] for item in history if item["type"] == "charge"} == {
        "…" + shop_wallet[-4:],
        "…" + rival_wallet[-4:],
    }
    assert shop_wallet not in client.known and rival_wallet not in client.known
    assert Wallet.objects.get(token=shop_wallet).balance + Decimal(0) >= 0
    assert client.responses > 12 and shop.responses > 5 and rival.responses > 5
