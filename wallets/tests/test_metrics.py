"""Business counters at /metrics: they move when a deposit or charge commits, and only then."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from wallet_service.tests.utils import assert_problem
from wallets import services
from wallets.models import Wallet
from wallets.tests.factories import WalletFactory

COUNTERS = {
    "deposits": ("wallet_deposits_total", ()),
    "deposited": ("wallet_deposited_amount_total", ()),
    "succeeded": ("wallet_charges_total", (("outcome", "succeeded"),)),
    "insufficient": ("wallet_charges_total", (("outcome", "insufficient_funds"),)),
    "charged": ("wallet_charged_amount_total", ()),
}


def scrape() -> dict[str, float]:
    """The business counters as /metrics shows them now."""
    response = APIClient().get("/metrics")
    assert response.status_code == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }
    return {name: samples[key] for name, key in COUNTERS.items()}


def moved(before: dict[str, float]) -> dict[str, float]:
    """How each counter moved since ``before`` (only the ones that moved)."""
    after = scrape()
    return {name: round(after[name] - before[name], 2) for name in COUNTERS if after[name] != before[name]}


@pytest.mark.django_db
def test_a_deposit_counts_once_with_its_amount(client_api, django_capture_on_commit_callbacks):
    wallet = WalletFactory(owner=client_api.user)
    before = scrape()
    with django_capture_on_commit_callbacks(execute=True):
        response = client_api.post("/wallet/deposit", {"wallet": wallet.token, "amount": "12.34"}, format="json")
    assert response.status_code == 200
    assert moved(before) == {"deposits": 1, "deposited": 12.34}


@pytest.mark.django_db
def test_a_charge_counts_as_succeeded_with_the_money_it_moved(
    company_api, merchant_wallet, customer_wallet, django_capture_on_commit_callbacks
):
    before = scrape()
    with django_capture_on_commit_callbacks(execute=True):
        response = company_api.post("/wallet/charge", {"wallet": customer_wallet.token, "amount": "25.50"})
    assert response.status_code == 200
    assert moved(before) == {"succeeded": 1, "charged": 25.5}


@pytest.mark.django_db
def test_a_charge_over_the_balance_counts_as_insufficient_funds_and_moves_no_money(
    company_api, merchant_wallet, customer_wallet, django_capture_on_commit_callbacks
):
    before = scrape()
    with django_capture_on_commit_callbacks(execute=True):
        response = company_api.post("/wallet/charge", {"wallet": customer_wallet.token, "amount": "100.01"})
    assert_problem(response, 402, "insufficient_funds")
    assert moved(before) == {"insufficient": 1}


@pytest.mark.django_db
def test_refused_deposits_and_charges_count_nothing(
    client_api, company_api, merchant_wallet, customer_wallet, django_capture_on_commit_callbacks
):
    other = WalletFactory()
    before = scrape()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        refused = [
            client_api.post("/wallet/deposit", {"wallet": other.token, "amount": "5"}),  # not the caller's: 404
            client_api.post("/wallet/deposit", {"wallet": other.token, "amount": "-5"}),  # 400
            client_api.post("/wallet/charge", {"wallet": customer_wallet.token, "amount": "5"}),  # a client: 403
            company_api.post("/wallet/charge", {"wallet": "no-such-wallet", "amount": "5"}),  # 404
            company_api.post("/wallet/charge", {"wallet": merchant_wallet.token, "amount": "5"}),  # same_wallet
        ]
    assert [response.status_code for response in refused] == [404, 400, 403, 404, 400]
    assert callbacks == []
    assert moved(before) == {}


@pytest.mark.django_db(transaction=True)
def test_counters_move_only_when_the_transaction_commits(company_user):
    merchant = Wallet.objects.create(owner=company_user)
    customer = WalletFactory(balance=Decimal("50.00"))
    before = scrape()

    with pytest.raises(RuntimeError), transaction.atomic():
        services.wallet_deposit(owner=customer.owner, wallet_token=customer.token, amount=Decimal("7.00"))
        services.wallet_charge(merchant=company_user, wallet_token=customer.token, amount=Decimal("3.00"))
        raise RuntimeError("rolled back after both services ran")
    assert moved(before) == {}

    with transaction.atomic():
        services.wallet_deposit(owner=customer.owner, wallet_token=customer.token, amount=Decimal("7.00"))
        assert moved(before) == {}  # not yet committed
    services.wallet_charge(merchant=company_user, wallet_token=customer.token, amount=Decimal("3.00"))
    assert moved(before) == {"deposits": 1, "deposited": 7.0, "succeeded": 1, "charged": 3.0}
    merchant.refresh_from_db()
    assert merchant.balance == Decimal("3.00")


@pytest.mark.django_db
def test_a_replayed_request_is_not_counted_again(
    client_api, company_api, merchant_wallet, customer_wallet, django_capture_on_commit_callbacks
):
    wallet = WalletFactory(owner=client_api.user)
    before = scrape()
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            deposit = client_api.post(
                "/wallet/deposit", {"wallet": wallet.token, "amount": "10"}, HTTP_IDEMPOTENCY_KEY="deposit-1"
            )
            assert deposit.status_code == 200
            for amount, key in (("4", "charge-1"), ("500", "charge-2")):
                company_api.post(
                    "/wallet/charge", {"wallet": customer_wallet.token, "amount": amount}, HTTP_IDEMPOTENCY_KEY=key
                )
    assert deposit["Idempotent-Replayed"] == "true"
    assert moved(before) == {"deposits": 1, "deposited": 10, "succeeded": 1, "charged": 4, "insufficient": 1}
