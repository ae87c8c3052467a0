"""The contract's Idempotency-Key on /wallet/deposit, /wallet/charge and /wallet/create, over HTTP."""

from __future__ import annotations

import json
from decimal import Decimal
from unittest.mock import ANY

import pytest
from django.db import OperationalError

from conftest import authenticated_client
from idempotency import apis as idempotency_apis
from idempotency.models import IdempotencyKey
from wallet_service.tests.utils import assert_problem
from wallets.models import Operation, Wallet
from wallets.tests.factories import WalletFactory

pytestmark = pytest.mark.django_db


def post(api, path, body, key, **extra):
    raw = body if isinstance(body, str) else json.dumps(body)
    return api.generic("POST", path, raw, content_type="application/json", HTTP_IDEMPOTENCY_KEY=key, **extra)


@pytest.fixture
def wallet(client_api):
    return WalletFactory(owner=client_api.user)


def balance(wallet) -> Decimal:
    wallet.refresh_from_db()
    return wallet.balance


def test_a_repeated_deposit_is_replayed_and_moves_money_once(client_api, wallet):
    first = post(client_api, "/wallet/deposit", {"wallet": wallet.token, "amount": "10.00"}, "order-1")
    assert first.status_code == 200
    assert "Idempotent-Replayed" not in first
    second = post(client_api, "/wallet/deposit", {"wallet": wallet.token, "amount": "10.00"}, "order-1")
    assert second.status_code == 200
    assert second["Idempotent-Replayed"] == "true"
    assert second.content == first.content
    assert second["Content-Type"] == "application/json"
    assert balance(wallet) == Decimal("10.00")
    assert Operation.objects.filter(target=wallet).count() == 1


def test_the_replay_is_the_first_answer_even_after_the_balance_changed(client_api, wallet):
    first = post(client_api, "/wallet/deposit", {"wallet": wallet.token, "amount": "10.00"}, "k")
    post(client_api, "/wallet/deposit", {"wallet": wallet.token, "amount": "5.00"}, "other")
    replay = post(client_api, "/wallet/deposit", {"wallet": wallet.token, "amount": "10.00"}, "k")
    assert (
        replay.json()
        == first.json()
        == {"wallet": wallet.token, "balance": "10.00", "held": "0.00", "available": "10.00"}
    )
    assert balance(wallet) == Decimal("15.00")


@pytest.mark.parametrize(
    "repeat",
    [
        '{"amount": "10.00", "wallet": "%s"}',  # key order
        '{ "wallet" : "%s" ,\n "amount":"10.00" }',  # spacing
    ],
)
def test_bodies_compare_as_parsed_json(client_api, wallet, repeat):
    post(client_api, "/wallet/deposit", {"wallet": wallet.token, "amount": "10.00"}, "k")
    replay = post(client_api, "/wallet/deposit", repeat % wallet.token, "k")
    assert replay["Idempotent-Replayed"] == "true"
    assert balance(wallet) == Decimal("10.00")


def deposit_body(wallet, amount_json: str) -> str:
    return f'{{"wallet": "{wallet.token}", "amount": {amount_json}}}'


def test_numbers_compare_by_value(client_api, wallet):
    post(client_api, "/wallet/deposit", deposit_body(wallet, "10"), "k")
    for spelling in ("10.0", "10.00", "1e1", "1.0E+1"):
        replay = post(client_api, "/wallet/deposit", deposit_body(wallet, spelling), "k")
        assert replay.status_code == 200, spelling
        assert replay["Idempotent-Replayed"] == "true"
    assert balance(wallet) == Decimal("10.00")


def test_a_number_and_a_string_are_different_bodies(client_api, wallet):
    post(client_api, "/wallet/deposit", deposit_body(wallet, "10"), "k")
    response = post(client_api, "/wallet/deposit", deposit_body(wallet, '"10.00"'), "k")
    assert_problem(response, 422, "idempotency_key_reused")
    assert balance(wallet) == Decimal("10.00")


def test_a_path_with_a_trailing_slash_is_the_same_path(client_api, wallet):
    post(client_api, "/wallet/deposit", {"wallet": wallet.token, "amount": "1"}, "k")
    replay = post(client_api, "/wallet/deposit/", {"wallet": wallet.token, "amount": "1"}, "k")
    assert replay["Idempotent-Replayed"] == "true"
    assert balance(wallet) == Decimal("1.00")


def test_a_key_reused_with_another_body_is_refused_and_moves_nothing(client_api, wallet):
    post(client_api, "/wallet/deposit", {"wallet": wallet.token, "amount": "10.00"}, "k")
    response = post(client_api, "/wallet/deposit", {"wallet": wallet.token, "amount": "11.00"}, "k")
    body = assert_problem(response, 422, "idempotency_key_reused")
    assert "body" in body["detail"]
    assert balance(wallet) == Decimal("10.00")


def test_a_key_reused_on_another_path_or_method_is_refused(client_api, company_api, wallet, merchant_wallet):
    post(company_api, "/wallet/deposit", {"wallet": merchant_wallet.token, "amount": "10.00"}, "k")
    other_path = post(company_api, "/wallet/charge", {"wallet": merchant_wallet.token, "amount": "10.00"}, "k")
    assert "POST /wallet/deposit" in assert_problem(other_path, 422, "idempotency_key_reused")["detail"]
    other_method = company_api.get("/wallet/deposit", HTTP_IDEMPOTENCY_KEY="k")
    assert_problem(other_method, 422, "idempotency_key_reused")
    assert balance(merchant_wallet) == Decimal("10.00")


def test_a_malformed_body_with_a_used_key_is_a_reused_key(client_api, wallet):
    post(client_api, "/wallet/deposit", {"wallet": wallet.token, "amount": "10.00"}, "k")
    assert_problem(post(client_api, "/wallet/deposit", "{not json", "k"), 422, "idempotency_key_reused")


def test_keys_are_scoped_per_user(client_api, wallet):
    other = authenticated_client(WalletFactory().owner)
    other_wallet = Wallet.objects.get(owner=other.user)
    assert post(client_api, "/wallet/deposit", {"wallet": wallet.token, "amount": "3"}, "shared").status_code == 200
    response = post(other, "/wallet/deposit", {"wallet": other_wallet.token, "amount": "4"}, "shared")
    assert response.status_code == 200
    assert "Idempotent-Replayed" not in response
    assert (balance(wallet), balance(other_wallet)) == (Decimal("3.00"), Decimal("4.00"))


def test_a_failed_charge_is_replayed_after_funds_arrive(company_api, merchant_wallet, client_api, wallet):
    body = {"wallet": wallet.token, "amount": "50.00", "summary": "Order 7"}
    first = post(company_api, "/wallet/charge", body, "order-7")
    assert_problem(first, 402, "insufficient_funds")
    post(client_api, "/wallet/deposit", {"wallet": wallet.token, "amount": "100.00"}, "top-up")
    replay = post(company_api, "/wallet/charge", body, "order-7")
    assert_problem(replay, 402, "insufficient_funds")
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.content == first.content
    assert (balance(wallet), balance(merchant_wallet)) == (Decimal("100.00"), Decimal("0.00"))
    assert list(Operation.objects.filter(kind="charge").values_list("success", flat=True)) == [False]


def test_a_successful_charge_is_replayed(company_api, merchant_wallet):
    customer = WalletFactory(balance=Decimal("100.00"))
    body = {"wallet": customer.token, "amount": "30.00"}
    first = post(company_api, "/wallet/charge", body, "c1")
    replay = post(company_api, "/wallet/charge", body, "c1")
    assert (first.status_code, replay.status_code) == (200, 200)
    assert (
        replay.json()
        == first.json()
        == {"wallet": merchant_wallet.token, "balance": "30.00", "held": "0.00", "available": "30.00", "operation": ANY}
    )
    assert (balance(customer), balance(merchant_wallet)) == (Decimal("70.00"), Decimal("30.00"))


def test_a_wallet_create_retried_with_its_key_opens_one_wallet(client_api):
    first = post(client_api, "/wallet/create", {}, "new-wallet")
    replay = post(client_api, "/wallet/create", {}, "new-wallet")
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.json() == first.json()
    assert Wallet.objects.filter(owner=client_api.user).count() == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"wallet": "nope", "amount": "1.00"}, 404, "not_found"),
        ({"amount": "1.00"}, 400, "validation_error"),
        ({"wallet": "W", "amount": "-1"}, 400, "validation_error"),
    ],
)
def test_a_refused_request_stores_nothing_and_may_be_retried(client_api, wallet, body, status, code):
    body = {**body, "wallet": wallet.token} if body.get("wallet") == "W" else body
    assert_problem(post(client_api, "/wallet/deposit", body, "retry-me"), status, code)
    assert not IdempotencyKey.objects.exists()
    fixed = post(client_api, "/wallet/deposit", {"wallet": wallet.token, "amount": "1.00"}, "retry-me")
    assert fixed.status_code == 200
    assert "Idempotent-Replayed" not in fixed
    assert balance(wallet) == Decimal("1.00")


@pytest.mark.parametrize("key", ["", "x" * 256, "clé", "tab\there"])
def test_a_malformed_key_is_a_validation_error(client_api, wallet, key):
    response = post(client_api, "/wallet/deposit", {"wallet": wallet.token, "amount": "1"}, key)
    body = assert_problem(response, 400, "validation_error")
    assert list(body["errors"]) == ["Idempotency-Key"]
    assert balance(wallet) == Decimal("0.00")
    assert not IdempotencyKey.objects.exists()


def test_the_longest_key_is_accepted(client_api, wallet):
    key = "~" * 255
    assert post(client_api, "/wallet/deposit", {"wallet": wallet.token, "amount": "1"}, key).status_code == 200
    assert IdempotencyKey.objects.get().key == key


def test_authentication_is_checked_before_the_key(api_client, wallet):
    assert_problem(
        post(api_client, "/wallet/deposit", {"wallet": wallet.token, "amount": "1"}, ""), 401, "not_authenticated"
    )


def test_the_key_is_checked_before_permissions(client_api, wallet):
    post(client_api, "/wallet/deposit", {"wallet": wallet.token, "amount": "1"}, "k")
    # A client may not charge (403), but the reused key is answered first, as the contract orders.
    response = post(client_api, "/wallet/charge", {"wallet": wallet.token, "amount": "1"}, "k")
    assert_problem(response, 422, "idempotency_key_reused")
    assert_problem(
        post(client_api, "/wallet/charge", {"wallet": wallet.token, "amount": "1"}, "k2"), 403, "permission_denied"
    )


def test_the_key_commits_with_the_money_or_not_at_all(client_api, wallet, monkeypatch):
    def fail(**kwargs):
        raise OperationalError("connection lost while storing the key")

    monkeypatch.setattr(idempotency_apis, "idempotency_complete", fail)
    response = post(client_api, "/wallet/deposit", {"wallet": wallet.token, "amount": "10.00"}, "k")
    assert_problem(response, 503, "service_unavailable")
    assert response["Retry-After"] == "1"
    assert balance(wallet) == Decimal("0.00")
    assert not Operation.objects.exists()
    assert not IdempotencyKey.objects.exists()


def test_the_stored_record_names_the_request(client_api, wallet):
    post(client_api, "/wallet/deposit/", {"wallet": wallet.token, "amount": "2"}, "k")
    record = IdempotencyKey.objects.get()
    assert (record.user, record.method, record.path, record.status_code) == (
        client_api.user,
        "POST",
        "/wallet/deposit",
        200,
    )
    assert json.loads(bytes(record.response_body)) == {
        "wallet": wallet.token,
        "balance": "2.00",
        "held": "0.00",
        "available": "2.00",
    }


def test_a_key_on_a_method_that_executes_nothing_is_not_claimed(client_api, wallet):
    options = client_api.options("/wallet/deposit", HTTP_IDEMPOTENCY_KEY="k")
    assert options.status_code == 200
    assert not IdempotencyKey.objects.exists()
    response = post(client_api, "/wallet/deposit", {"wallet": wallet.token, "amount": "1"}, "k")
    assert response.status_code == 200
    assert "Idempotent-Replayed" not in response
