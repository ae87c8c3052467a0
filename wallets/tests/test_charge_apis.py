from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.tests.factories import CompanyFactory
from conftest import authenticated_client
from wallet_service.money import MAX_BALANCE
from wallet_service.tests.utils import assert_max_queries, assert_problem
from wallets.models import Operation
from wallets.tests.factories import WalletFactory


def charge(api, wallet, amount, **extra):
    return api.post(
        "/wallet/charge", {"wallet": getattr(wallet, "token", wallet), "amount": amount, **extra}, format="json"
    )


@pytest.mark.django_db
def test_charge_moves_money_to_the_merchant_and_records_it(company_api, merchant_wallet, customer_wallet):
    response = charge(company_api, customer_wallet, "25.00", summary="Order 1234")
    assert response.status_code == 200
    operation = Operation.objects.get()
    # "operation" is the charge's id in the history: what a refund names.
    assert response.json() == {
        "wallet": merchant_wallet.token,
        "balance": "25.00",
        "held": "0.00",
        "available": "25.00",
        "operation": operation.id,
    }
    customer_wallet.refresh_from_db()
    merchant_wallet.refresh_from_db()
    assert (customer_wallet.balance, merchant_wallet.balance) == (Decimal("75.00"), Decimal("25.00"))
    assert (operation.kind, operation.source, operation.target) == ("charge", customer_wallet, merchant_wallet)
    assert (operation.amount, operation.summary, operation.success) == (Decimal("25.00"), "Order 1234", True)


@pytest.mark.django_db
def test_charging_the_whole_balance_leaves_zero(company_api, merchant_wallet, customer_wallet):
    assert charge(company_api, customer_wallet, "100").status_code == 200
    customer_wallet.refresh_from_db()
    assert customer_wallet.balance == Decimal("0.00")


@pytest.mark.django_db
def test_charge_over_balance_is_recorded_as_failed(company_api, merchant_wallet, customer_wallet):
    response = charge(company_api, customer_wallet, "100.01", summary="Too much")
    problem = assert_problem(response, 402, "insufficient_funds")
    assert problem["operation"] == Operation.objects.get().id
    customer_wallet.refresh_from_db()
    merchant_wallet.refresh_from_db()
    assert (customer_wallet.balance, merchant_wallet.balance) == (Decimal("100.00"), Decimal("0.00"))
    failed = Operation.objects.get()
    assert (failed.source, failed.target, failed.amount, failed.success) == (
        customer_wallet,
        merchant_wallet,
        Decimal("100.01"),
        False,
    )
    assert failed.summary == "Too much"


@pytest.mark.django_db
def test_a_merchant_may_charge_another_merchant(company_api, merchant_wallet):
    other_merchant_wallet = WalletFactory(owner=CompanyFactory().user, balance=Decimal("10.00"))
    assert charge(company_api, other_merchant_wallet, "4.00").json()["balance"] == "4.00"


@pytest.mark.django_db
def test_summary_may_be_omitted_empty_or_null(company_api, merchant_wallet, customer_wallet):
    assert charge(company_api, customer_wallet, "1").status_code == 200
    assert charge(company_api, customer_wallet, "1", summary="").status_code == 200
    assert charge(company_api, customer_wallet, "1", summary=None).status_code == 200
    assert list(Operation.objects.values_list("summary", flat=True)) == ["", "", ""]


@pytest.mark.django_db
def test_a_client_cannot_charge(client_api, customer_wallet):
    assert_problem(charge(client_api, customer_wallet, "1.00"), 403, "permission_denied")
    assert not Operation.objects.exists()


@pytest.mark.django_db
def test_charge_requires_authentication(api_client, customer_wallet):
    assert_problem(charge(api_client, customer_wallet, "1.00"), 401, "not_authenticated")


@pytest.mark.django_db
def test_a_merchant_without_wallet_gets_409(company_api, customer_wallet):
    assert_problem(charge(company_api, customer_wallet, "1.00"), 409, "merchant_wallet_missing")
    assert not Operation.objects.exists()


@pytest.mark.django_db
def test_charging_an_unknown_wallet_is_404(company_api, merchant_wallet):
    assert_problem(charge(company_api, "no-such-wallet", "1.00"), 404, "not_found")


@pytest.mark.django_db
def test_charging_its_own_wallet_is_same_wallet(company_api, merchant_wallet):
    merchant_wallet.balance = Decimal("50.00")
    merchant_wallet.save()
    assert_problem(charge(company_api, merchant_wallet, "1.00"), 400, "same_wallet")
    assert_problem(charge(company_api, merchant_wallet, "500.00"), 400, "same_wallet")  # not 402
    assert not Operation.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("amount", ["0", "-1", "1.001", True, "abc", None])
def test_bad_amount_is_refused_and_leaves_no_trace(company_api, merchant_wallet, customer_wallet, amount):
    assert "amount" in assert_problem(charge(company_api, customer_wallet, amount), 400, "validation_error")["errors"]
    assert not Operation.objects.exists()
    customer_wallet.refresh_from_db()
    assert customer_wallet.balance == Decimal("100.00")


@pytest.mark.django_db
def test_summary_over_255_characters_is_refused(company_api, merchant_wallet, customer_wallet):
    response = charge(company_api, customer_wallet, "1", summary="x" * 256)
    assert "summary" in assert_problem(response, 400, "validation_error")["errors"]
    assert charge(company_api, customer_wallet, "1", summary="x" * 255).status_code == 200


# --- which error wins when several apply (docs/API.md, "Errors") -----------------------------------


@pytest.mark.django_db
def test_forbidden_wins_over_validation(client_api):
    assert_problem(charge(client_api, "x", "-1"), 403, "permission_denied")


@pytest.mark.django_db
def test_validation_wins_over_missing_merchant_wallet(company_api):
    assert_problem(charge(company_api, "no-such-wallet", "-1"), 400, "validation_error")


@pytest.mark.django_db
def test_missing_merchant_wallet_wins_over_not_found(company_api):
    assert_problem(charge(company_api, "no-such-wallet", "1"), 409, "merchant_wallet_missing")


@pytest.mark.django_db
def test_not_found_wins_over_insufficient_funds(company_api, merchant_wallet):
    assert_problem(charge(company_api, "no-such-wallet", "999999"), 404, "not_found")


@pytest.mark.django_db
def test_a_charge_that_would_overflow_the_merchant_balance_is_refused(company_api, merchant_wallet, customer_wallet):
    merchant_wallet.balance = MAX_BALANCE
    merchant_wallet.save()
    assert "amount" in assert_problem(charge(company_api, customer_wallet, "1"), 400, "validation_error")["errors"]
    customer_wallet.refresh_from_db()
    assert customer_wallet.balance == Decimal("100.00")
    assert not Operation.objects.exists()


@pytest.mark.django_db
def test_charge_costs_few_queries(company_api, merchant_wallet, customer_wallet):
    # token+user, lock the charged wallet (the merchant's is credited without waiting), debit, credit,
    # insert the operation and its events
    with assert_max_queries(5):
        assert charge(company_api, customer_wallet, "1").status_code == 200


@pytest.mark.django_db
def test_a_company_cannot_spam_or_probe_a_wallet_with_refused_attempts(settings, company_api, merchant_wallet):
    settings.WALLET_SERVICE_REFUSED_ATTEMPTS_PER_HOUR = 3
    customer = WalletFactory(balance=Decimal("50.00"))
    # Bisection: each refusal says "less than this". Three are recorded, then nothing more is.
    for amount in ("100.00", "75.00", "60.00"):
        assert_problem(charge(company_api, customer, amount), 402, "insufficient_funds")
    hold = company_api.post("/wallet/hold", {"wallet": customer.token, "amount": "55.00"}, format="json")
    problem = assert_problem(hold, 429, "throttled")
    assert 3500 <= int(hold["Retry-After"]) <= 3600 and "refused" in problem["detail"]
    assert_problem(charge(company_api, customer, "51.00"), 429, "throttled")
    assert Operation.objects.filter(success=False).count() == 3
    # A charge that fits still goes through; another company is not affected.
    assert charge(company_api, customer, "10.00").status_code == 200
    rival = authenticated_client(CompanyFactory().user)
    WalletFactory(owner=rival.user)
    assert_problem(charge(rival, customer, "100.00"), 402, "insufficient_funds")
