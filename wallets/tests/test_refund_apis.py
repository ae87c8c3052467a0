"""Refunds: money of a charge or capture given back, whole or in parts, never more than was taken."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.tests.factories import CompanyFactory
from conftest import authenticated_client
from wallet_service.tests.utils import assert_max_queries, assert_problem
from wallets import services
from wallets.errors import InsufficientFunds
from wallets.models import Operation
from wallets.tests.factories import WalletFactory, current_balance


@pytest.fixture
def shop(company_api):
    return WalletFactory(owner=company_api.user)


@pytest.fixture
def customer(client_api):
    return WalletFactory(owner=client_api.user, balance=Decimal("100.00"))


def charge(api, wallet, amount) -> int:
    response = api.post("/wallet/charge", {"wallet": wallet.token, "amount": amount}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["operation"]


def refund(api, operation, **extra):
    return api.post("/wallet/refund", {"operation": operation, **extra}, format="json")


@pytest.mark.django_db
def test_a_refund_gives_the_whole_charge_back_by_default(company_api, client_api, shop, customer):
    charged = charge(company_api, customer, "30.00")
    response = refund(company_api, charged, summary="Returned")
    assert response.status_code == 200, response.content
    body = response.json()
    refund_op = Operation.objects.get(kind="refund")
    assert body == {
        "refund": refund_op.id, "operation": charged, "amount": "30.00", "refunded": "30.00",
        "wallet": shop.token, "balance": "0.00", "held": "0.00", "available": "0.00",
    }  # fmt: skip
    assert (current_balance(customer), current_balance(shop)) == (Decimal("100.00"), Decimal("0.00"))
    assert (refund_op.source_id, refund_op.target_id, refund_op.refund_of_id) == (shop.pk, customer.pk, charged)
    # In both histories, as the contract shows a refund: the merchant's token masked for the customer.
    mine = client_api.get(f"/wallet/history/{customer.token}").json()[0]
    assert (mine["type"], mine["refund_of"], mine["amount"], mine["summary"]) == (
        "refund",
        charged,
        "30.00",
        "Returned",
    )
    assert (mine["source__token"], mine["target__token"]) == ("…" + shop.token[-4:], customer.token)
    assert mine["counterparty"] == {"kind": "company", "name": company_api.user.company.name}
    theirs = company_api.get(f"/wallet/history/{shop.token}").json()[0]
    assert (theirs["type"], theirs["source__token"], theirs["target__token"]) == ("refund", shop.token, customer.token)
    assert theirs["counterparty"] == {"kind": "client"}


@pytest.mark.django_db
def test_partial_refunds_add_up_to_the_charge_and_no_further(company_api, shop, customer):
    charged = charge(company_api, customer, "30.00")
    assert refund(company_api, charged, amount="10.00").json()["refunded"] == "10.00"
    assert refund(company_api, charged, amount="15.00").json()["refunded"] == "25.00"
    problem = assert_problem(refund(company_api, charged, amount="5.01"), 400, "validation_error")
    assert "5.00" in problem["errors"]["amount"][0]
    assert refund(company_api, charged).json()["amount"] == "5.00"  # the rest, by default
    assert current_balance(customer) == Decimal("100.00")
    problem = assert_problem(refund(company_api, charged), 400, "validation_error")
    assert "Nothing is left" in problem["errors"]["amount"][0]
    assert Operation.objects.filter(kind="refund").count() == 3


@pytest.mark.django_db
def test_only_a_successful_charge_or_capture_into_the_company_can_be_refunded(
    company_api, company_user, shop, customer
):
    services.wallet_deposit(owner=company_user, wallet_token=shop.token, amount=Decimal("50"))
    deposit = Operation.objects.get(kind="deposit").id
    with pytest.raises(InsufficientFunds) as failed:
        services.wallet_charge(merchant=company_user, wallet_token=customer.token, amount=Decimal("500"))
    hold = services.hold_create(merchant=company_user, wallet_token=customer.token, amount=Decimal("10"))
    hold_op = Operation.objects.get(kind="hold", success=True).id
    charged = charge(company_api, customer, "5.00")
    refund_op = refund(company_api, charged).json()["refund"]
    for operation in (deposit, failed.value.operation.id, hold_op, refund_op):
        problem = assert_problem(refund(company_api, operation), 400, "validation_error")
        assert "operation" in problem["errors"]
    services.hold_capture(merchant=company_user, hold_id=hold.public_id, amount=Decimal("4"))
    capture = Operation.objects.get(kind="capture").id
    assert refund(company_api, capture).json()["amount"] == "4.00"


@pytest.mark.django_db
def test_an_operation_of_someone_else_is_not_found(company_api, client_api, shop, customer):
    rival = authenticated_client(CompanyFactory().user)
    WalletFactory(owner=rival.user)
    charged = charge(company_api, customer, "5.00")
    assert_problem(refund(rival, charged), 404, "not_found")
    assert_problem(refund(company_api, 999999999), 404, "not_found")
    assert_problem(refund(client_api, charged), 403, "permission_denied")
    newcomer = authenticated_client(CompanyFactory().user)  # no wallet at all
    assert_problem(refund(newcomer, charged), 404, "not_found")
    assert not Operation.objects.filter(kind="refund").exists()


@pytest.mark.django_db
def test_a_refund_takes_only_the_companys_available_and_records_nothing_when_short(
    company_api, company_user, shop, customer
):
    charged = charge(company_api, customer, "30.00")
    # Another company holds 25.00 of the shop's 30.00: only 5.00 is available to refund.
    rival = CompanyFactory().user
    WalletFactory(owner=rival)
    services.hold_create(merchant=rival, wallet_token=shop.token, amount=Decimal("25"))
    problem = assert_problem(refund(company_api, charged, amount="5.01"), 402, "insufficient_funds")
    assert "operation" not in problem
    assert not Operation.objects.filter(kind="refund").exists()
    assert refund(company_api, charged, amount="5.00").json()["available"] == "0.00"


@pytest.mark.django_db
@pytest.mark.parametrize("operation", ["1", 1.0, True, None, 0, -3, 2**63])
def test_a_malformed_operation_is_400(company_api, shop, operation):
    assert "operation" in assert_problem(refund(company_api, operation), 400, "validation_error")["errors"]


@pytest.mark.django_db
def test_pending_credits_of_a_hot_merchant_count_for_its_refunds(company_api, company_user, shop, customer):
    from wallets.models import PendingCredit

    charged = charge(company_api, customer, "30.00")
    # Leave the shop's money as a pending credit, as a charge does when the shop's row is busy.
    shop.refresh_from_db()
    type(shop).objects.filter(pk=shop.pk).update(balance=0)
    PendingCredit.objects.create(wallet=shop, amount=Decimal("30.00"))
    assert refund(company_api, charged).json()["balance"] == "0.00"
    assert not PendingCredit.objects.filter(wallet=shop).exists()


@pytest.mark.django_db
def test_a_refund_is_replayed_by_its_idempotency_key_and_moves_money_once(company_api, shop, customer):
    charged = charge(company_api, customer, "30.00")
    headers = {"HTTP_IDEMPOTENCY_KEY": "refund-1"}
    first = company_api.post("/wallet/refund", {"operation": charged, "amount": "10"}, format="json", **headers)
    again = company_api.post("/wallet/refund", {"operation": charged, "amount": "10"}, format="json", **headers)
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert current_balance(customer) == Decimal("80.00")


@pytest.mark.django_db
def test_a_refund_costs_a_bounded_number_of_statements(company_api, shop, customer):
    charged = charge(company_api, customer, "30.00")
    # key, merchant wallet lock, the charge, refunded so far, fold, debit, credit, parties, refund+events
    with assert_max_queries(9):
        assert refund(company_api, charged, amount="1").status_code == 200


@pytest.mark.django_db
def test_a_refused_refund_stores_nothing_with_its_key_and_runs_when_retried_after_funds_arrive(
    company_api, company_user, shop, customer
):
    # A refund's 402 records nothing: it was not executed, so its key must not replay it (only the 402
    # of a recorded failed charge or hold is stored). The retry with the same key runs the refund.
    charged = charge(company_api, customer, "30.00")
    rival = CompanyFactory().user
    WalletFactory(owner=rival)
    hold = services.hold_create(merchant=rival, wallet_token=shop.token, amount=Decimal("25"))
    headers = {"HTTP_IDEMPOTENCY_KEY": "refund-when-short"}
    body = {"operation": charged, "amount": "10.00"}
    first = company_api.post("/wallet/refund", body, format="json", **headers)
    assert_problem(first, 402, "insufficient_funds")
    services.hold_void(merchant=rival, hold_id=hold.public_id)
    again = company_api.post("/wallet/refund", body, format="json", **headers)
    assert again.status_code == 200, again.content
    assert "Idempotent-Replayed" not in again
    assert current_balance(customer) == Decimal("80.00")
    replay = company_api.post("/wallet/refund", body, format="json", **headers)
    assert (replay.status_code, replay["Idempotent-Replayed"], replay.content) == (200, "true", again.content)
