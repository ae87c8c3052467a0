"""Holds: authorize now (reserve part of a wallet's available), capture later, or void; expiry."""

from __future__ import annotations

import re
import time
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from accounts.tests.factories import CompanyFactory
from conftest import authenticated_client
from wallet_service.tests.utils import assert_max_queries, assert_problem
from wallets import services
from wallets.models import Hold, Operation
from wallets.tests.factories import WalletFactory, current_balance

DATE_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.fixture
def shop(company_api):
    return WalletFactory(owner=company_api.user)


@pytest.fixture
def customer(client_api):
    return WalletFactory(owner=client_api.user, balance=Decimal("100.00"))


def hold(api, wallet, amount, **extra):
    return api.post("/wallet/hold", {"wallet": wallet.token, "amount": amount, **extra}, format="json")


def wallet_info(api, wallet) -> dict:
    return api.get(f"/wallet/info/{wallet.token}").json()


@pytest.mark.django_db
def test_a_hold_reserves_available_money_and_moves_nothing(company_api, client_api, shop, customer):
    response = hold(company_api, customer, "25.00", summary="Order 1234", expires_in=3600)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body.keys() == {
        "hold", "wallet", "merchant_wallet", "amount", "captured", "remaining", "status", "summary", "created",
        "expires_at",
    }  # fmt: skip
    assert body["hold"].startswith("hold_") and re.fullmatch(r"[A-Za-z0-9_-]+", body["hold"])
    assert (body["wallet"], body["merchant_wallet"]) == (customer.token, shop.token)
    assert (body["amount"], body["captured"], body["remaining"], body["status"]) == (
        "25.00",
        "0.00",
        "25.00",
        "pending",
    )
    assert body["summary"] == "Order 1234"
    assert DATE_RE.fullmatch(body["created"]) and DATE_RE.fullmatch(body["expires_at"])
    hold_row = Hold.objects.get()
    assert (hold_row.expires_at - hold_row.created_at).total_seconds() == 3600
    assert wallet_info(client_api, customer) == {
        "wallet": customer.token, "balance": "100.00", "held": "25.00", "available": "75.00"
    }  # fmt: skip
    assert wallet_info(company_api, shop)["balance"] == "0.00"
    deposit = client_api.post("/wallet/deposit", {"wallet": customer.token, "amount": "10.00"}, format="json")
    assert deposit.json() == {"wallet": customer.token, "balance": "110.00", "held": "25.00", "available": "85.00"}
    assert client_api.get("/wallet/list").json() == [wallet_info(client_api, customer)]
    # In both histories, as a hold item that moves no money.
    mine = client_api.get(f"/wallet/history/{customer.token}").json()[1]
    assert (mine["type"], mine["hold"], mine["amount"], mine["success"]) == ("hold", body["hold"], "25.00", True)
    assert mine["target__token"] == "…" + shop.token[-4:]
    (theirs,) = company_api.get(f"/wallet/history/{shop.token}").json()
    assert (theirs["type"], theirs["hold"], theirs["source__token"]) == ("hold", body["hold"], customer.token)
    assert company_api.get(f"/wallet/hold/{body['hold']}").json() == body


@pytest.mark.django_db
def test_six_holds_of_1000_cannot_all_fit_in_5000(company_api, shop):
    wallet = WalletFactory(balance=Decimal("5000.00"))
    statuses = [hold(company_api, wallet, "1000").status_code for _ in range(6)]
    assert statuses == [201] * 5 + [402]
    failed = Operation.objects.get(success=False)
    assert (failed.kind, failed.hold_id, failed.source_id, failed.target_id) == ("hold", None, wallet.pk, shop.pk)


@pytest.mark.django_db
def test_a_refused_hold_is_a_recorded_402_in_both_histories(company_api, client_api, shop, customer):
    problem = assert_problem(hold(company_api, customer, "100.01"), 402, "insufficient_funds")
    failed = Operation.objects.get()
    assert problem["operation"] == failed.id
    assert not Hold.objects.exists()
    for api, wallet in ((client_api, customer), (company_api, shop)):
        (item,) = api.get(f"/wallet/history/{wallet.token}").json()
        assert (item["id"], item["type"], item["hold"], item["success"]) == (failed.id, "hold", None, False)


@pytest.mark.django_db
def test_charges_and_refunds_take_only_the_available_part(company_api, shop, customer):
    assert hold(company_api, customer, "80.00").status_code == 201
    charge = company_api.post("/wallet/charge", {"wallet": customer.token, "amount": "30.00"}, format="json")
    assert_problem(charge, 402, "insufficient_funds")
    charge = company_api.post("/wallet/charge", {"wallet": customer.token, "amount": "20.00"}, format="json")
    assert charge.status_code == 200
    assert current_balance(customer) == Decimal("80.00")


@pytest.mark.django_db
def test_partial_captures_then_a_final_one(company_api, client_api, shop, customer):
    hold_id = hold(company_api, customer, "50.00").json()["hold"]
    first = company_api.post(f"/wallet/hold/{hold_id}/capture", {"amount": "10.00", "final": False}, format="json")
    assert first.status_code == 200, first.content
    assert (first.json()["captured"], first.json()["remaining"], first.json()["status"]) == (
        "10.00",
        "40.00",
        "pending",
    )
    assert wallet_info(client_api, customer) == {
        "wallet": customer.token, "balance": "90.00", "held": "40.00", "available": "50.00"
    }  # fmt: skip
    assert wallet_info(company_api, shop)["balance"] == "10.00"
    last = company_api.post(f"/wallet/hold/{hold_id}/capture", {"amount": "15.00"}, format="json")
    assert (last.json()["captured"], last.json()["remaining"], last.json()["status"]) == ("25.00", "0.00", "captured")
    # The final capture released the other 25.00.
    assert wallet_info(client_api, customer) == {
        "wallet": customer.token, "balance": "75.00", "held": "0.00", "available": "75.00"
    }  # fmt: skip
    assert wallet_info(company_api, shop)["balance"] == "25.00"
    captures = [item for item in company_api.get(f"/wallet/history/{shop.token}").json() if item["type"] == "capture"]
    assert [(item["amount"], item["hold"], item["success"]) for item in captures] == [
        ("15.00", hold_id, True),
        ("10.00", hold_id, True),
    ]
    assert_problem(company_api.post(f"/wallet/hold/{hold_id}/capture", {}, format="json"), 409, "hold_not_pending")
    assert_problem(company_api.post(f"/wallet/hold/{hold_id}/void", {}, format="json"), 409, "hold_not_pending")


@pytest.mark.django_db
def test_a_capture_defaults_to_everything_that_remains(company_api, shop, customer):
    hold_id = hold(company_api, customer, "30.00").json()["hold"]
    body = company_api.post(f"/wallet/hold/{hold_id}/capture", {}, format="json").json()
    assert (body["captured"], body["remaining"], body["status"]) == ("30.00", "0.00", "captured")
    assert (current_balance(customer), current_balance(shop)) == (Decimal("70.00"), Decimal("30.00"))


@pytest.mark.django_db
def test_capturing_more_than_remains_is_400_and_moves_nothing(company_api, shop, customer):
    hold_id = hold(company_api, customer, "30.00").json()["hold"]
    problem = assert_problem(
        company_api.post(f"/wallet/hold/{hold_id}/capture", {"amount": "30.01"}, format="json"), 400, "validation_error"
    )
    assert "amount" in problem["errors"]
    assert (current_balance(customer), current_balance(shop)) == (Decimal("100.00"), Decimal("0.00"))
    assert Hold.objects.get().status == "pending"


@pytest.mark.django_db
def test_a_void_releases_the_reservation_and_moves_nothing(company_api, client_api, shop, customer):
    hold_id = hold(company_api, customer, "60.00").json()["hold"]
    body = company_api.post(f"/wallet/hold/{hold_id}/void", {}, format="json").json()
    assert (body["status"], body["captured"], body["remaining"]) == ("voided", "0.00", "0.00")
    assert wallet_info(client_api, customer)["available"] == "100.00"
    assert current_balance(shop) == Decimal("0.00")
    assert_problem(company_api.post(f"/wallet/hold/{hold_id}/capture", {}, format="json"), 409, "hold_not_pending")
    assert_problem(company_api.post(f"/wallet/hold/{hold_id}/void", {}, format="json"), 409, "hold_not_pending")


@pytest.mark.django_db
def test_a_hold_expires_at_its_instant_without_any_job(company_api, client_api, shop, customer):
    hold_id = hold(company_api, customer, "60.00", expires_in=1).json()["hold"]
    assert wallet_info(client_api, customer)["available"] == "40.00"
    time.sleep(1.1)
    body = company_api.get(f"/wallet/hold/{hold_id}").json()
    assert (body["status"], body["remaining"]) == ("expired", "0.00")
    assert wallet_info(client_api, customer) == {
        "wallet": customer.token, "balance": "100.00", "held": "0.00", "available": "100.00"
    }  # fmt: skip
    assert Hold.objects.get().status == "pending"  # nothing has marked it: the clock alone decides
    assert_problem(company_api.post(f"/wallet/hold/{hold_id}/capture", {}, format="json"), 409, "hold_not_pending")
    assert_problem(company_api.post(f"/wallet/hold/{hold_id}/void", {}, format="json"), 409, "hold_not_pending")
    charge = company_api.post("/wallet/charge", {"wallet": customer.token, "amount": "100.00"}, format="json")
    assert charge.status_code == 200
    # The job only writes down what the clock already said.
    assert services.holds_expire() == 1
    assert Hold.objects.get().status == "expired"
    assert services.holds_expire() == 0


@pytest.mark.django_db
def test_only_the_company_that_placed_a_hold_sees_it(company_api, client_api, shop, customer):
    hold_id = hold(company_api, customer, "10.00").json()["hold"]
    rival = authenticated_client(CompanyFactory().user)
    WalletFactory(owner=rival.user)
    assert_problem(rival.get(f"/wallet/hold/{hold_id}"), 404, "not_found")
    assert_problem(rival.post(f"/wallet/hold/{hold_id}/capture", {}, format="json"), 404, "not_found")
    assert_problem(rival.post(f"/wallet/hold/{hold_id}/void", {}, format="json"), 404, "not_found")
    assert_problem(company_api.get("/wallet/hold/hold_unknown"), 404, "not_found")
    for response in (
        client_api.get(f"/wallet/hold/{hold_id}"),
        client_api.post(f"/wallet/hold/{hold_id}/capture", {}, format="json"),
        client_api.post(f"/wallet/hold/{hold_id}/void", {}, format="json"),
        hold(client_api, customer, "1.00"),
    ):
        assert_problem(response, 403, "permission_denied")
    assert Hold.objects.get().status == "pending"


@pytest.mark.django_db
def test_a_hold_is_refused_like_a_charge(company_api, shop, customer):
    assert_problem(hold(company_api, shop, "1.00"), 400, "same_wallet")
    assert_problem(company_api.post("/wallet/hold", {"wallet": "nope", "amount": "1"}, format="json"), 404, "not_found")
    newcomer = authenticated_client(CompanyFactory().user)
    assert_problem(hold(newcomer, customer, "1.00"), 409, "merchant_wallet_missing")
    assert not Operation.objects.exists() and not Hold.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("expires_in", [0, 2592001, 1.5, "60", True, None, -1])
def test_expires_in_must_be_whole_seconds_up_to_30_days(company_api, shop, customer, expires_in):
    problem = assert_problem(hold(company_api, customer, "1.00", expires_in=expires_in), 400, "validation_error")
    assert "expires_in" in problem["errors"]
    assert not Hold.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("body", [{"final": "yes"}, {"final": 1}, {"amount": "0"}, {"amount": "1.001"}, {"amount": -1}])
def test_a_malformed_capture_is_400(company_api, shop, customer, body):
    hold_id = hold(company_api, customer, "10.00").json()["hold"]
    assert_problem(company_api.post(f"/wallet/hold/{hold_id}/capture", body, format="json"), 400, "validation_error")


@pytest.mark.django_db
def test_the_default_expiry_is_seven_days(company_api, shop, customer):
    hold(company_api, customer, "1.00")
    hold_row = Hold.objects.get()
    assert (hold_row.expires_at - hold_row.created_at).total_seconds() == 7 * 24 * 3600


@pytest.mark.django_db
def test_a_refused_hold_is_replayed_by_its_idempotency_key(company_api, shop, customer):
    headers = {"HTTP_IDEMPOTENCY_KEY": "hold-1"}
    body = {"wallet": customer.token, "amount": "500.00"}
    first = company_api.post("/wallet/hold", body, format="json", **headers)
    again = company_api.post("/wallet/hold", body, format="json", **headers)
    assert (first.status_code, again.status_code) == (402, 402)
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Operation.objects.count() == 1


@pytest.mark.django_db
def test_a_capture_is_replayed_by_its_idempotency_key(company_api, shop, customer):
    hold_id = hold(company_api, customer, "50.00").json()["hold"]
    headers = {"HTTP_IDEMPOTENCY_KEY": "capture-1"}
    body = {"amount": "10.00", "final": False}
    first = company_api.post(f"/wallet/hold/{hold_id}/capture", body, format="json", **headers)
    again = company_api.post(f"/wallet/hold/{hold_id}/capture", body, format="json", **headers)
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Hold.objects.get().captured == Decimal("10.00")


@pytest.mark.django_db
def test_the_database_keeps_holds_moving_forward(shop, customer):
    hold_row = Hold.objects.create(
        wallet=customer, merchant_wallet=shop, amount=Decimal("10"), expires_at="2100-01-01T00:00:00Z"
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Hold.objects.filter(pk=hold_row.pk).update(captured=Decimal("10.01"))
    Hold.objects.filter(pk=hold_row.pk).update(captured=Decimal("4"))
    with pytest.raises(IntegrityError), transaction.atomic():
        Hold.objects.filter(pk=hold_row.pk).update(captured=Decimal("3"))
    Hold.objects.filter(pk=hold_row.pk).update(status="voided")
    for change in ({"status": "pending"}, {"status": "captured"}, {"captured": Decimal("5")}):
        with pytest.raises(IntegrityError), transaction.atomic():
            Hold.objects.filter(pk=hold_row.pk).update(**change)
    with pytest.raises(IntegrityError), transaction.atomic():
        Hold.objects.filter(pk=hold_row.pk).delete()


@pytest.mark.django_db
def test_a_charge_still_costs_four_statements_with_holds_on_the_wallet(company_user, customer):
    WalletFactory(owner=company_user)
    services.hold_create(merchant=company_user, wallet_token=customer.token, amount=Decimal("10"))
    with assert_max_queries(4):
        services.wallet_charge(merchant=company_user, wallet_token=customer.token, amount=Decimal("1"))


@pytest.mark.django_db
def test_hold_endpoints_statement_counts(company_api, shop, customer):
    with assert_max_queries(9):  # key, lock, touch, hold, operation, idempotency is off, read back
        hold_id = hold(company_api, customer, "10.00").json()["hold"]
    with assert_max_queries(3):
        company_api.get(f"/wallet/hold/{hold_id}")
    with assert_max_queries(10):
        company_api.post(f"/wallet/hold/{hold_id}/capture", {"amount": "1.00", "final": False}, format="json")
    with assert_max_queries(6):
        company_api.post(f"/wallet/hold/{hold_id}/void", {}, format="json")


@pytest.mark.django_db
@pytest.mark.parametrize("key", [None, "nul-in-path"])
def test_a_hold_id_with_a_nul_byte_is_not_found_not_a_server_error(company_api, shop, key):
    # PostgreSQL cannot store or compare NUL in text: such an id must be refused as not found (404) before
    # it reaches the database — by the hold lookups, and by the Idempotency-Key's record of the path.
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    for method, path in (
        ("get", "/wallet/hold/%00"),
        ("post", "/wallet/hold/hold_%00x/capture"),
        ("post", "/wallet/hold/%00/void"),
    ):
        response = getattr(company_api, method)(path, {} if method == "post" else None, format="json", **headers)
        assert_problem(response, 404, "not_found")
