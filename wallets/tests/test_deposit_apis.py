from __future__ import annotations

import json
from decimal import Decimal

import pytest

from wallet_service.money import MAX_BALANCE
from wallet_service.tests.utils import assert_max_queries, assert_problem
from wallets.models import Operation
from wallets.tests.factories import WalletFactory


def deposit(api, wallet, amount, **extra):
    return api.post(
        "/wallet/deposit", {"wallet": getattr(wallet, "token", wallet), "amount": amount, **extra}, format="json"
    )


@pytest.mark.django_db
def test_deposit_adds_to_the_balance_and_records_the_operation(client_api):
    wallet = WalletFactory(owner=client_api.user)
    response = deposit(client_api, wallet, "100.00", summary="Top-up")
    assert response.status_code == 200
    assert response.json() == {"wallet": wallet.token, "balance": "100.00", "held": "0.00", "available": "100.00"}
    response = deposit(client_api, wallet, 12.5)
    assert response.json()["balance"] == "112.50"
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("112.50")
    operations = list(Operation.objects.order_by("id").values_list("kind", "source", "target", "amount", "summary"))
    assert operations == [
        ("deposit", None, wallet.pk, Decimal("100.00"), "Top-up"),
        ("deposit", None, wallet.pk, Decimal("12.50"), ""),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("raw_amount", "balance"),
    [('"12.5"', "12.50"), ("12.5", "12.50"), ("12", "12.00"), ("1e2", "100.00"), ("12.500", "12.50"), ("0.1", "0.10")],
)
def test_amount_as_string_or_json_number(client_api, raw_amount, balance):
    wallet = WalletFactory(owner=client_api.user)
    raw = f'{{"wallet": "{wallet.token}", "amount": {raw_amount}}}'
    response = client_api.post("/wallet/deposit", data=raw, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["balance"] == balance


@pytest.mark.django_db
@pytest.mark.parametrize(
    "raw_amount",
    [
        '"1.500"',
        '"12."',
        '"1e2"',
        '"-5"',
        '" 5"',
        '"5,00"',
        '""',
        '"NaN"',
        '"Infinity"',
        "0",
        "0.00",
        "-5",
        "1.005",
        "1000000000.01",
        "1e30",
        "true",
        "false",
        "null",
        "[]",
        "{}",
        '"0"',
    ],
)
def test_bad_amounts_are_refused_and_nothing_is_stored(client_api, raw_amount):
    wallet = WalletFactory(owner=client_api.user, balance=Decimal("5.00"))
    raw = f'{{"wallet": "{wallet.token}", "amount": {raw_amount}}}'
    response = client_api.post("/wallet/deposit", data=raw, content_type="application/json")
    body = assert_problem(response, 400, "validation_error")
    assert list(body["errors"]) == ["amount"]
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("5.00")
    assert not Operation.objects.exists()


@pytest.mark.django_db
def test_missing_fields_are_named(client_api):
    body = assert_problem(client_api.post("/wallet/deposit", {}, format="json"), 400, "validation_error")
    assert set(body["errors"]) == {"wallet", "amount"}


@pytest.mark.django_db
def test_summary_longer_than_255_is_refused(client_api):
    wallet = WalletFactory(owner=client_api.user)
    response = deposit(client_api, wallet, "1.00", summary="x" * 256)
    assert "summary" in assert_problem(response, 400, "validation_error")["errors"]
    assert not Operation.objects.exists()


@pytest.mark.django_db
def test_deposit_into_an_unknown_wallet_is_404(client_api):
    assert_problem(deposit(client_api, "no-such-wallet", "1.00"), 404, "not_found")


@pytest.mark.django_db
def test_deposit_into_another_users_wallet_is_404_and_moves_nothing(client_api):
    wallet = WalletFactory()
    assert_problem(deposit(client_api, wallet, "1.00"), 404, "not_found")
    wallet.refresh_from_db()
    assert wallet.balance == 0
    assert not Operation.objects.exists()


@pytest.mark.django_db
def test_validation_error_wins_over_not_found(client_api):
    assert_problem(deposit(client_api, "no-such-wallet", "-1"), 400, "validation_error")


@pytest.mark.django_db
def test_companies_can_deposit_into_their_wallet(company_api):
    wallet = WalletFactory(owner=company_api.user)
    assert deposit(company_api, wallet, "3.00").json()["balance"] == "3.00"


@pytest.mark.django_db
def test_a_deposit_that_would_overflow_the_balance_is_refused(client_api):
    wallet = WalletFactory(owner=client_api.user, balance=MAX_BALANCE - Decimal("1.00"))
    response = deposit(client_api, wallet, "2.00")
    assert "amount" in assert_problem(response, 400, "validation_error")["errors"]
    wallet.refresh_from_db()
    assert wallet.balance == MAX_BALANCE - Decimal("1.00")


@pytest.mark.django_db
def test_deposit_costs_few_queries(client_api):
    wallet = WalletFactory(owner=client_api.user)
    # token+user, lock wallet, update balance, insert operation
    with assert_max_queries(4):
        assert deposit(client_api, wallet, "1.00").status_code == 200


@pytest.mark.django_db
def test_balance_is_returned_as_a_string_never_a_float(client_api):
    wallet = WalletFactory(owner=client_api.user)
    response = deposit(client_api, wallet, "0.10")
    assert json.loads(response.content)["balance"] == "0.10"


@pytest.mark.django_db
@pytest.mark.parametrize(("field", "value"), [("wallet", 12345), ("wallet", True), ("summary", 5), ("summary", [])])
def test_non_string_wallet_or_summary_is_refused(client_api, field, value):
    wallet = WalletFactory(owner=client_api.user)
    body = {"wallet": wallet.token, "amount": "1.00", field: value}
    assert (
        field
        in assert_problem(client_api.post("/wallet/deposit", body, format="json"), 400, "validation_error")["errors"]
    )
    assert not Operation.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("padded", ["{} ", " {}", "{}\n"])
def test_a_wallet_token_is_matched_exactly_as_sent(client_api, padded):
    wallet = WalletFactory(owner=client_api.user)
    assert_problem(deposit(client_api, padded.format(wallet.token), "1.00"), 404, "not_found")


@pytest.mark.django_db
def test_summary_is_stored_as_sent(client_api):
    wallet = WalletFactory(owner=client_api.user)
    assert deposit(client_api, wallet, "1.00", summary="  Top-up  ").status_code == 200
    assert Operation.objects.get().summary == "  Top-up  "
