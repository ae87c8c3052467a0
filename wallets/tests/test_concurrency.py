"""Races with real threads, each on its own PostgreSQL connection, through the HTTP stack."""

from __future__ import annotations

import threading
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Q

from accounts.tests.factories import ClientFactory, CompanyFactory
from conftest import authenticated_client
from wallet_service.tests.utils import on_another_connection, race
from wallets import services
from wallets.models import Operation, Wallet
from wallets.tests.factories import WalletFactory, current_balance

pytestmark = pytest.mark.django_db(transaction=True)


def test_twenty_charges_racing_for_one_balance_never_overdraw():
    merchant = CompanyFactory().user
    merchant_wallet = WalletFactory(owner=merchant)
    customer = WalletFactory(balance=Decimal("100.00"))
    apis = [authenticated_client(merchant) for _ in range(20)]
    body = {"wallet": customer.token, "amount": "10.00", "summary": "race"}
    statuses = race([lambda api=api: api.post("/wallet/charge", body, format="json").status_code for api in apis])
    assert Counter(statuses) == {200: 10, 402: 10}
    assert current_balance(customer) == Decimal("0.00")
    assert current_balance(merchant_wallet) == Decimal("100.00")
    assert Operation.objects.filter(success=True).count() == 10
    assert Operation.objects.filter(success=False).count() == 10


def test_sixty_four_racing_deposits_are_all_counted():
    owner = ClientFactory().user
    wallet = WalletFactory(owner=owner)
    apis = [authenticated_client(owner) for _ in range(64)]
    body = {"wallet": wallet.token, "amount": "1.25"}
    statuses = race([lambda api=api: api.post("/wallet/deposit", body, format="json").status_code for api in apis])
    assert statuses == [200] * 64
    assert current_balance(wallet) == Decimal("80.00")
    assert Operation.objects.filter(target=wallet).count() == 64


def test_deposits_and_charges_racing_on_one_wallet_keep_it_consistent():
    owner = ClientFactory().user
    wallet = WalletFactory(owner=owner, balance=Decimal("20.00"))
    merchants = [CompanyFactory().user for _ in range(4)]
    for merchant in merchants:
        WalletFactory(owner=merchant)
    calls = []
    for n in range(32):
        if n % 2:
            api = authenticated_client(owner)
            calls.append(
                lambda api=api: api.post("/wallet/deposit", {"wallet": wallet.token, "amount": "5"}).status_code
            )
        else:
            api = authenticated_client(merchants[n % 4])
            calls.append(
                lambda api=api: api.post("/wallet/charge", {"wallet": wallet.token, "amount": "7"}).status_code
            )
    statuses = race(calls)
    assert set(statuses) <= {200, 402}
    succeeded = Operation.objects.filter(success=True)
    deposited = sum(op.amount for op in succeeded if op.kind == "deposit")
    charged = sum(op.amount for op in succeeded if op.kind == "charge")
    assert current_balance(wallet) == Decimal("20.00") + deposited - charged >= 0
    assert deposited == Decimal("80")
    balances = Wallet.objects.with_current_balance().values_list("current_balance", flat=True)
    assert sum(balances) == Decimal("20.00") + deposited


def test_crossed_charges_between_two_merchants_do_not_deadlock():
    first, second = CompanyFactory().user, CompanyFactory().user
    first_wallet = WalletFactory(owner=first, balance=Decimal("1000.00"))
    second_wallet = WalletFactory(owner=second, balance=Decimal("1000.00"))
    calls = []
    for n in range(40):
        merchant, charged = (first, second_wallet) if n % 2 else (second, first_wallet)
        api = authenticated_client(merchant)
        calls.append(
            lambda api=api, charged=charged: api.post("/wallet/charge", {"wallet": charged.token, "amount": "1"})
        )
    responses = race(calls)
    assert [response.status_code for response in responses] == [200] * 40, [r.content for r in responses]
    assert current_balance(first_wallet) == current_balance(second_wallet) == Decimal("1000.00")


def test_simultaneous_wallet_creation_never_exceeds_the_limit(settings):
    settings.WALLET_SERVICE_MAX_WALLETS_BY_CLIENT = 3
    owner = ClientFactory().user
    apis = [authenticated_client(owner) for _ in range(12)]
    statuses = race([lambda api=api: api.post("/wallet/create", {}, format="json").status_code for api in apis])
    assert Counter(statuses) == {201: 3, 409: 9}
    assert Wallet.objects.filter(owner=owner).count() == 3


def test_a_company_creating_wallets_at_once_gets_exactly_one():
    merchant = CompanyFactory().user
    apis = [authenticated_client(merchant) for _ in range(10)]
    statuses = race([lambda api=api: api.post("/wallet/create", {}, format="json").status_code for api in apis])
    assert Counter(statuses) == {201: 1, 409: 9}
    assert Wallet.objects.filter(owner=merchant).count() == 1


def test_history_walks_under_concurrent_writes_see_exactly_a_prefix_of_the_ledger():
    """Each walk shows every operation committed before its first page, once, and none after.

    Operations on a charged (client) wallet commit in id order (ids are drawn under the wallet's
    lock), so the right answer for a walk is "every id up to the newest one on its first page". A page read as
    two statements with two snapshots could show a later operation but miss an earlier one.
    """
    owner = ClientFactory().user
    wallet = WalletFactory(owner=owner, balance=Decimal("1000000.00"))
    merchants = [CompanyFactory().user for _ in range(3)]
    for merchant in merchants:
        WalletFactory(owner=merchant)
    for _ in range(40):
        services.wallet_deposit(owner=owner, wallet_token=wallet.token, amount=Decimal("1"))
    reader = authenticated_client(owner)
    writers = [authenticated_client(owner)] + [authenticated_client(merchant) for merchant in merchants]
    stop = threading.Event()
    walks: list[list[int]] = []

    def write(api, is_owner):
        path = "/wallet/deposit" if is_owner else "/wallet/charge"
        while not stop.is_set():
            assert api.post(path, {"wallet": wallet.token, "amount": "1"}, format="json").status_code == 200

    def read():
        for _ in range(10):
            url, seen = f"/wallet/history/{wallet.token}?limit=10", []
            while url:
                response = reader.get(url)
                seen.extend(item["id"] for item in response.json())
                link = response.headers.get("Link")
                url = link[1 : link.index(">")] if link else None
            walks.append(seen)
        stop.set()

    race([lambda: read()] + [lambda api=api, n=n: write(api, n == 0) for n, api in enumerate(writers)])
    ids = sorted(Operation.objects.filter(Q(source=wallet) | Q(target=wallet)).values_list("id", flat=True))
    assert len(walks) == 10
    for seen in walks:
        newest = max(seen)  # the newest operation committed when the walk's first page was read
        assert sorted(seen) == [i for i in ids if i <= newest]
        assert seen == sorted(seen, reverse=True)


def test_a_history_page_is_one_snapshot_even_when_writes_commit_while_it_is_read():
    """Right after the page's first ledger statement, another connection commits a charge X (the
    wallet as source) and then a deposit Y (the wallet as target). The page must show both or
    neither: showing Y without X would show a ledger that never existed, and X would then be
    skipped by the rest of the walk, since it is newer than the cursor."""
    owner = ClientFactory().user
    merchant = CompanyFactory().user
    wallet = WalletFactory(owner=owner, balance=Decimal("100.00"))
    WalletFactory(owner=merchant)
    for _ in range(3):
        services.wallet_deposit(owner=owner, wallet_token=wallet.token, amount=Decimal("1"))
    reader = authenticated_client(owner)
    injected = []

    def commit_x_then_y():
        services.wallet_charge(merchant=merchant, wallet_token=wallet.token, amount=Decimal("5"))
        services.wallet_deposit(owner=owner, wallet_token=wallet.token, amount=Decimal("7"))

    def after_first_ledger_statement(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not injected and "wallet_history_side" in sql:
            injected.append(sql)
            on_another_connection(commit_x_then_y)
        return result

    with connection.execute_wrapper(after_first_ledger_statement):
        page = reader.get(f"/wallet/history/{wallet.token}").json()
    assert injected
    amounts = [item["amount"] for item in page]
    assert amounts == ["1.00", "1.00", "1.00"] or amounts == ["7.00", "5.00", "1.00", "1.00", "1.00"]
