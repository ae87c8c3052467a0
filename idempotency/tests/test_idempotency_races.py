"""Requests with one Idempotency-Key at the same moment: real threads, each on its own connection."""

from __future__ import annotations

import json
import threading
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connections, transaction

from accounts.tests.factories import ClientFactory, CompanyFactory
from conftest import authenticated_client
from idempotency import services
from idempotency.fingerprints import body_digest
from idempotency.models import IdempotencyKey
from wallet_service.tests.utils import assert_problem, race
from wallets.models import Operation
from wallets.tests.factories import WalletFactory

pytestmark = pytest.mark.django_db(transaction=True)


def post(api, path, body, key):
    return api.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_twelve_deposits_with_one_key_at_once_move_money_once():
    owner = ClientFactory().user
    wallet = WalletFactory(owner=owner)
    apis = [authenticated_client(owner) for _ in range(12)]
    body = {"wallet": wallet.token, "amount": "10.00"}
    responses = race([lambda api=api: post(api, "/wallet/deposit", body, "same") for api in apis])
    statuses = Counter(response.status_code for response in responses)
    assert set(statuses) <= {200, 409}, statuses
    executed = [r for r in responses if r.status_code == 200 and "Idempotent-Replayed" not in r]
    assert len(executed) == 1
    assert all(r.json() == executed[0].json() for r in responses if r.status_code == 200)
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("10.00")
    assert Operation.objects.count() == 1
    assert IdempotencyKey.objects.count() == 1


def test_twelve_charges_with_one_key_at_once_charge_once():
    merchant = CompanyFactory().user
    merchant_wallet = WalletFactory(owner=merchant)
    customer = WalletFactory(balance=Decimal("1000.00"))
    apis = [authenticated_client(merchant) for _ in range(12)]
    body = {"wallet": customer.token, "amount": "25.00", "summary": "Order 1"}
    responses = race([lambda api=api: post(api, "/wallet/charge", body, "order-1") for api in apis])
    assert {r.status_code for r in responses} <= {200, 409}
    assert sum(1 for r in responses if r.status_code == 200 and "Idempotent-Replayed" not in r) == 1
    customer.refresh_from_db()
    merchant_wallet.refresh_from_db()
    assert (customer.balance, merchant_wallet.balance) == (Decimal("975.00"), Decimal("25.00"))
    assert Operation.objects.count() == 1


def test_racing_keys_of_different_users_do_not_wait_for_each_other():
    owners = [ClientFactory().user for _ in range(6)]
    wallets = [WalletFactory(owner=owner) for owner in owners]
    apis = [authenticated_client(owner) for owner in owners]
    responses = race(
        [
            lambda api=api, wallet=wallet: post(api, "/wallet/deposit", {"wallet": wallet.token, "amount": "1"}, "k")
            for api, wallet in zip(apis, wallets, strict=True)
        ]
    )
    assert [r.status_code for r in responses] == [200] * 6
    assert Operation.objects.count() == 6


class FirstRequest:
    """Holds a claim on a key in an open transaction on its own connection, as a slow first request would."""

    def __init__(self, user, key: str, path: str, body: dict):
        self.args = {
            "user": user,
            "key": key,
            "method": "POST",
            "path": path,
            "body_digest": body_digest(json.dumps(body).encode()),
        }
        self.claimed = threading.Event()
        self.finish = threading.Event()
        self.commit_response: services.StoredResponse | None = None
        self.thread = threading.Thread(target=self._run)

    def _run(self):
        try:
            with transaction.atomic():
                claim = services.idempotency_claim(**self.args)
                self.claimed.set()
                self.finish.wait(20)
                if self.commit_response is None:
                    transaction.set_rollback(True)
                else:
                    services.idempotency_complete(claim_id=claim, response=self.commit_response)
        finally:
            connections.close_all()

    def __enter__(self):
        self.thread.start()
        assert self.claimed.wait(10)
        return self

    def __exit__(self, *exc):
        self.finish.set()
        self.thread.join(20)


def test_a_repeat_while_the_first_is_still_running_gets_409_and_never_executes(monkeypatch):
    monkeypatch.setattr(services, "KEY_WAIT", "300ms")
    owner = ClientFactory().user
    wallet = WalletFactory(owner=owner)
    body = {"wallet": wallet.token, "amount": "5.00"}
    with FirstRequest(owner, "slow", "/wallet/deposit", body):
        response = post(authenticated_client(owner), "/wallet/deposit", body, "slow")
        assert_problem(response, 409, "idempotency_key_in_use")
        assert response["Retry-After"] == "1"
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("0.00")
    # The first request rolled back (it was refused, say): the key is free, and a retry executes.
    retry = post(authenticated_client(owner), "/wallet/deposit", body, "slow")
    assert retry.status_code == 200
    assert "Idempotent-Replayed" not in retry
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("5.00")


def test_a_repeat_waits_for_the_first_to_commit_and_replays_its_answer():
    owner = ClientFactory().user
    wallet = WalletFactory(owner=owner)
    body = {"wallet": wallet.token, "amount": "5.00"}
    stored = services.StoredResponse(200, b'{"stored": true}', "application/json")
    responses = []
    with FirstRequest(owner, "k", "/wallet/deposit", body) as first:
        first.commit_response = stored
        repeat = threading.Thread(
            target=lambda: (
                responses.append(post(authenticated_client(owner), "/wallet/deposit", body, "k")),
                connections.close_all(),
            )
        )
        repeat.start()
        repeat.join(0.5)
        assert repeat.is_alive(), "the repeat must wait for the first request"
    repeat.join(10)
    (response,) = responses
    assert response.status_code == 200
    assert response["Idempotent-Replayed"] == "true"
    assert response.content == b'{"stored": true}'
    assert not Operation.objects.exists()
