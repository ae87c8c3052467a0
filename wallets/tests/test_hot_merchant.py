"""A merchant that receives every charge is not a queue: charges credit its wallet without waiting
for its row lock, leaving the credit pending when another transaction holds it. Balances stay exact."""

from __future__ import annotations

import threading
from decimal import Decimal
from io import StringIO
from unittest.mock import ANY

import pytest
from django.core.management import CommandError, call_command
from django.db import connections, transaction

from accounts.tests.factories import ClientFactory, CompanyFactory
from conftest import authenticated_client
from wallet_service.tests.utils import race
from wallets import services
from wallets.models import PendingCredit, Wallet
from wallets.tests.factories import WalletFactory, current_balance

pytestmark = pytest.mark.django_db(transaction=True)


class HeldWallet:
    """Another transaction holding ``wallet``'s row lock, as a long deposit into it would."""

    def __init__(self, wallet: Wallet):
        self.wallet = wallet
        self.locked, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold)

    def _hold(self):
        try:
            with transaction.atomic():
                Wallet.objects.select_for_update(no_key=True).get(pk=self.wallet.pk)
                self.locked.set()
                self.release.wait(20)
        finally:
            connections.close_all()

    def __enter__(self):
        self.thread.start()
        assert self.locked.wait(10)
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.thread.join(20)


def charge_in_thread(api, wallet, amount) -> tuple[threading.Thread, list]:
    responses: list = []

    def run():
        try:
            responses.append(api.post("/wallet/charge", {"wallet": wallet.token, "amount": amount}, format="json"))
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, responses


def test_a_charge_does_not_wait_for_the_merchant_wallet_and_its_credit_counts_at_once():
    merchant = CompanyFactory().user
    shop = WalletFactory(owner=merchant, balance=Decimal("5.00"))
    customer = WalletFactory(balance=Decimal("100.00"))
    api = authenticated_client(merchant)
    with HeldWallet(shop):
        thread, responses = charge_in_thread(api, customer, "30.00")
        thread.join(5)
        assert not thread.is_alive(), "the charge waited for the merchant wallet's lock"
        (response,) = responses
        assert response.status_code == 200
        assert response.json() == {
            "wallet": shop.token,
            "balance": "35.00",
            "held": "0.00",
            "available": "35.00",
            "operation": ANY,
        }
        assert list(PendingCredit.objects.values_list("wallet", "amount")) == [(shop.pk, Decimal("30.00"))]
        shop.refresh_from_db()
        assert shop.balance == Decimal("5.00")  # settled part only
        info = api.get(f"/wallet/info/{shop.token}")
        assert info.json()["balance"] == "35.00"
        assert current_balance(customer) == Decimal("70.00")
    # The next operation that locks the wallet folds the pending credit into its balance.
    deposit = api.post("/wallet/deposit", {"wallet": shop.token, "amount": "1.00"}, format="json")
    assert deposit.json()["balance"] == "36.00"
    assert not PendingCredit.objects.exists()
    shop.refresh_from_db()
    assert shop.balance == Decimal("36.00")


def test_a_merchant_can_spend_its_pending_credits():
    merchant, other = CompanyFactory().user, CompanyFactory().user
    shop = WalletFactory(owner=merchant)
    other_shop = WalletFactory(owner=other)
    customer = WalletFactory(balance=Decimal("50.00"))
    with HeldWallet(shop):
        thread, _ = charge_in_thread(authenticated_client(merchant), customer, "50.00")
        thread.join(5)
    assert PendingCredit.objects.filter(wallet=shop).count() == 1
    # The shop's settled balance is 0.00: the charge must count the pending 50.00 as the shop's money.
    response = authenticated_client(other).post("/wallet/charge", {"wallet": shop.token, "amount": "50.00"})
    assert response.status_code == 200, response.content
    assert (current_balance(shop), current_balance(other_shop)) == (Decimal("0.00"), Decimal("50.00"))
    assert not PendingCredit.objects.filter(wallet=shop).exists()


def test_thirty_charges_into_one_merchant_at_once_keep_every_balance_exact():
    merchant = CompanyFactory().user
    shop = WalletFactory(owner=merchant)
    customers = [WalletFactory(owner=ClientFactory().user) for _ in range(30)]
    for customer in customers:  # through the ledger, so that the audit below can pass
        services.wallet_deposit(owner=customer.owner, wallet_token=customer.token, amount=Decimal("10.00"))
    apis = [authenticated_client(merchant) for _ in customers]
    responses = race(
        [
            lambda api=api, customer=customer: api.post("/wallet/charge", {"wallet": customer.token, "amount": "7.50"})
            for api, customer in zip(apis, customers, strict=True)
        ]
    )
    assert [response.status_code for response in responses] == [200] * 30
    assert current_balance(shop) == Decimal("225.00")
    assert all(current_balance(customer) == Decimal("2.50") for customer in customers)
    call_command("audit_ledger", stdout=StringIO())  # raises on drift
    api = authenticated_client(merchant)
    assert api.post("/wallet/deposit", {"wallet": shop.token, "amount": "1"}).json()["balance"] == "226.00"
    assert not PendingCredit.objects.exists()


def test_the_audit_counts_pending_credits_as_the_wallets_money():
    merchant = CompanyFactory().user
    shop = WalletFactory(owner=merchant)
    customer = WalletFactory(balance=Decimal("0.00"))
    authenticated_client(customer.owner).post("/wallet/deposit", {"wallet": customer.token, "amount": "20"})
    with HeldWallet(shop):
        thread, _ = charge_in_thread(authenticated_client(merchant), customer, "20.00")
        thread.join(5)
    assert PendingCredit.objects.exists()
    out = StringIO()
    call_command("audit_ledger", stdout=out)
    assert "Sum of balances:             20.00" in out.getvalue()
    # A pending credit with no operation behind it is drift.
    PendingCredit.objects.create(wallet=shop, amount=Decimal("1.00"))
    with pytest.raises(CommandError, match="1 wallets differ from their ledger"):
        call_command("audit_ledger", stdout=StringIO())


def walk(api, url: str) -> list[str]:
    amounts = []
    while url:
        response = api.get(url)
        amounts += [item["amount"] for item in response.json()]
        link = response.headers.get("Link")
        url = link[1 : link.index(">")] if link else None
    return amounts


def test_a_merchant_history_walk_shows_exactly_what_existed_when_it_began():
    merchant = CompanyFactory().user
    shop = WalletFactory(owner=merchant)
    first, second = (WalletFactory(owner=ClientFactory().user) for _ in range(2))
    for customer in (first, second):
        services.wallet_deposit(owner=customer.owner, wallet_token=customer.token, amount=Decimal("10.00"))
    services.wallet_charge(merchant=merchant, wallet_token=first.token, amount=Decimal("1.00"))

    # Charge A takes the merchant's (free) wallet lock, writes its operation and stays uncommitted.
    written, release = threading.Event(), threading.Event()

    def charge_a():
        try:
            with transaction.atomic():
                services.wallet_charge(merchant=merchant, wallet_token=first.token, amount=Decimal("2.00"))
                written.set()
                release.wait(20)
        finally:
            connections.close_all()

    thread = threading.Thread(target=charge_a)
    thread.start()
    assert written.wait(10)
    # Charge B finds the wallet held, leaves its credit pending, and commits first, with a newer (date, id).
    services.wallet_charge(merchant=merchant, wallet_token=second.token, amount=Decimal("3.00"))
    assert PendingCredit.objects.filter(wallet=shop).exists()

    api = authenticated_client(merchant)
    first_page = api.get(f"/wallet/history/{shop.token}?limit=1")
    assert [item["amount"] for item in first_page.json()] == ["3.00"]
    next_url = first_page.headers["Link"][1 : first_page.headers["Link"].index(">")]
    release.set()
    thread.join(20)
    # A committed during the walk: older by (date, id), but it did not exist when the walk began.
    assert ["3.00", *walk(api, next_url)] == ["3.00", "1.00"]
    assert walk(api, f"/wallet/history/{shop.token}?limit=1") == ["3.00", "2.00", "1.00"]
    assert current_balance(shop) == Decimal("6.00")
