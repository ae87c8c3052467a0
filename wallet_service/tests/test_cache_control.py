"""Balances, histories and tokens are never stored by a browser or a shared cache."""

from __future__ import annotations

import pytest

from wallets.tests.factories import WalletFactory


@pytest.mark.django_db
def test_api_responses_say_no_store(client_api, api_client):
    wallet = WalletFactory(owner=client_api.user)
    responses = [
        client_api.get(f"/wallet/info/{wallet.token}"),
        client_api.get(f"/wallet/history/{wallet.token}"),
        client_api.get("/wallet/list"),
        client_api.post("/wallet/create", {}, format="json"),
        client_api.get("/wallet/info/unknown"),  # a problem too
        api_client.get("/wallet/list"),  # 401
        api_client.get("/status"),
        api_client.post("/client/signup", {}, format="json"),
    ]
    assert [response["Cache-Control"] for response in responses] == ["no-store"] * len(responses)
