"""Races on holds and refunds, with real threads, each on its own PostgreSQL connection."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from accounts.tests.factories import ClientFactory, CompanyFactory
from conftest import authenticated_client
from wallet_service.tests.utils import behind_a_lock, race
from wallets import services
from wallets.audit import ledger_audit
from wallets.errors import InsufficientFunds
from wallets.models import Hold, Operation
from wallets.tests.factories import WalletFactory, current_balance

pytestmark = pytest.mark.django_db(transaction=True)


def post(api, path, body):
    return lambda: api.post(path, body, format="json").status_code


def funded(owner, amount: str):
    """A wallet whose balance comes from a deposit, so that the ledger audit can account for it."""
    wallet = WalletFactory(owner=owner)
    services.wallet_deposit(owner=wallet.owner, wallet_token=wallet.token, amount=Decimal(amount))
    return wallet


def available(wallet) -> Decimal:
    from wallets.selectors import wallet_get

    found = wallet_get(owner=wallet.owner, token=wallet.token)
    return found.current_balance - found.held


def test_holds_and_charges_racing_for_one_available_never_over_reserve():
    merchant = CompanyFactory().user
    WalletFactory(owner=merchant)
    customer = funded(ClientFactory().user, "100.00")
    apis = [authenticated_client(merchant) for _ in range(10)]
    body = {"wallet": customer.token, "amount": "20.00"}
    calls = [post(api, "/wallet/hold" if index % 2 else "/wallet/charge", body) for index, api in enumerate(apis)]
    statuses = race(calls)
    succeeded = sum(status in (200, 201) for status in statuses)
    assert succeeded == 5 and statuses.count(402) == 5
    assert available(customer) == Decimal("0.00")
    held = sum(hold.amount for hold in Hold.objects.all())
    assert current_balance(customer) == Decimal("100.00") - (Decimal("20.00") * 5 - held)
    assert ledger_audit().ok


def test_captures_racing_captures_and_voids_never_take_more_than_the_hold():
    merchant = CompanyFactory().user
    shop = WalletFactory(owner=merchant)
    customer = funded(ClientFactory().user, "100.00")
    hold = services.hold_create(merchant=merchant, wallet_token=customer.token, amount=Decimal("50.00"))
    apis = [authenticated_client(merchant) for _ in range(12)]
    calls = [
        post(api, f"/wallet/hold/{hold.public_id}/capture", {"amount": "10.00", "final": False})
        if index % 4
        else post(api, f"/wallet/hold/{hold.public_id}/void", {})
        for index, api in enumerate(apis)
    ]
    statuses = race(calls)
    hold = Hold.objects.get(public_id=hold.public_id)
    captured = Operation.objects.filter(kind="capture").count()
    assert hold.captured == Decimal("10.00") * captured <= hold.amount
    assert current_balance(shop) == hold.captured
    assert current_balance(customer) == Decimal("100.00") - hold.captured
    if hold.status == "voided":
        assert available(customer) == current_balance(customer)  # nothing is reserved any more
    # Every answer is one the contract gives: done, over what remains, or no longer pending.
    assert set(statuses) <= {200, 400, 409}
    assert statuses.count(200) == captured + (hold.status == "voided")
    assert ledger_audit().ok


def test_racing_refunds_of_one_charge_never_refund_more_than_it():
    merchant = CompanyFactory().user
    shop = funded(merchant, "100.00")
    customer = funded(ClientFactory().user, "50.00")
    charge = services.wallet_charge(merchant=merchant, wallet_token=customer.token, amount=Decimal("50.00"))
    apis = [authenticated_client(merchant) for _ in range(10)]
    statuses = race([post(api, "/wallet/refund", {"operation": charge.id, "amount": "10.00"}) for api in apis])
    assert Counter(statuses) == {200: 5, 400: 5}
    assert current_balance(customer) == Decimal("50.00")
    assert current_balance(shop) == Decimal("100.00")
    assert ledger_audit().ok


def test_crossed_refunds_and_charges_between_two_merchants_do_not_deadlock():
    first, second = CompanyFactory().user, CompanyFactory().user
    first_wallet = funded(first, "1000.00")
    second_wallet = funded(second, "1000.00")
    charges_by_first = [
        services.wallet_charge(merchant=first, wallet_token=second_wallet.token, amount=Decimal("5")) for _ in range(4)
    ]
    charges_by_second = [
        services.wallet_charge(merchant=second, wallet_token=first_wallet.token, amount=Decimal("5")) for _ in range(4)
    ]
    first_api, second_api = authenticated_client(first), authenticated_client(second)
    calls = []
    for by_first, by_second in zip(charges_by_first, charges_by_second, strict=True):
        calls += [
            post(first_api, "/wallet/refund", {"operation": by_first.id}),
            post(second_api, "/wallet/refund", {"operation": by_second.id}),
            post(first_api, "/wallet/charge", {"wallet": second_wallet.token, "amount": "1.00"}),
            post(second_api, "/wallet/charge", {"wallet": first_wallet.token, "amount": "1.00"}),
        ]
    statuses = race([lambda call=call: call() for call in calls])
    assert statuses == [200] * len(calls)  # no deadlock (a 503), no refusal
    assert current_balance(first_wallet) + current_balance(second_wallet) == Decimal("2000.00")
    assert ledger_audit().ok


def test_a_charge_that_waited_for_the_lock_sees_the_hold_committed_meanwhile():
    """The charge's locking statement waits for the wallet while a hold is being placed: the row it
    gets is the new one, but its subqueries see the snapshot from before it waited, without the hold.
    It must notice (the wallet's row changed) and read the held amount again before deciding."""
    merchant = CompanyFactory().user
    WalletFactory(owner=merchant)
    customer = funded(ClientFactory().user, "100.00")
    outcome = behind_a_lock(
        lambda: services.hold_create(merchant=merchant, wallet_token=customer.token, amount=Decimal("80.00")),
        lambda: services.wallet_charge(merchant=merchant, wallet_token=customer.token, amount=Decimal("30.00")),
        refused=InsufficientFunds,
    )
    assert isinstance(outcome, InsufficientFunds)  # 100 - 80 held leaves 20: 30 does not fit
    assert available(customer) == Decimal("20.00")
    assert ledger_audit().ok
