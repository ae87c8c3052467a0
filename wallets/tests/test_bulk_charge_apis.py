"""POST /wallet/charges: many charges validated whole, run in order in one transaction, set-based."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from accounts.tests.factories import ClientFactory, CompanyFactory
from conftest import authenticated_client
from events.models import Event
from wallet_service.tests.utils import assert_max_queries, assert_problem, race
from wallets import services
from wallets.audit import ledger_audit
from wallets.models import Operation
from wallets.tests.factories import WalletFactory, current_balance


@pytest.fixture
def shop(company_api):
    return WalletFactory(owner=company_api.user)


def bulk(api, charges, **headers):
    return api.post("/wallet/charges", {"charges": charges}, format="json", **headers)


@pytest.mark.django_db
def test_each_item_is_a_charge_as_if_sent_alone_in_order(company_api, shop):
    rich = WalletFactory(balance=Decimal("100.00"))
    poor = WalletFactory(balance=Decimal("5.00"))
    response = bulk(
        company_api,
        [
            {"wallet": rich.token, "amount": "30.00", "summary": "May"},
            {"wallet": poor.token, "amount": "9.99", "summary": "May"},
            {"wallet": "no-such-wallet", "amount": "1.00"},
            {"wallet": shop.token, "amount": "1.00"},
            {"wallet": rich.token, "amount": "70.00"},  # sees the first item: exactly what is left
            {"wallet": rich.token, "amount": "0.01"},  # and now nothing is
        ],
    )
    assert response.status_code == 200, response.content
    body = response.json()
    operations = list(Operation.objects.order_by("id"))
    assert [(op.source_id, op.amount, op.success) for op in operations] == [
        (rich.pk, Decimal("30.00"), True),
        (poor.pk, Decimal("9.99"), False),
        (rich.pk, Decimal("70.00"), True),
        (rich.pk, Decimal("0.01"), False),
    ]
    assert body["results"] == [
        {"status": 200, "operation": operations[0].id},
        {"status": 402, "code": "insufficient_funds", "operation": operations[1].id},
        {"status": 404, "code": "not_found"},
        {"status": 400, "code": "same_wallet"},
        {"status": 200, "operation": operations[2].id},
        {"status": 402, "code": "insufficient_funds", "operation": operations[3].id},
    ]
    assert {key: body[key] for key in ("wallet", "balance", "held", "available")} == {
        "wallet": shop.token, "balance": "100.00", "held": "0.00", "available": "100.00"
    }  # fmt: skip
    assert (current_balance(rich), current_balance(poor), current_balance(shop)) == (
        Decimal("0.00"), Decimal("5.00"), Decimal("100.00")
    )  # fmt: skip
    # Each recorded item is in both histories and has its events, as a lone charge would.
    history = company_api.get(f"/wallet/history/{shop.token}").json()
    assert [(item["id"], item["success"], item["summary"]) for item in history] == [
        (op.id, op.success, op.summary) for op in reversed(operations)
    ]
    assert Counter(Event.objects.values_list("type", flat=True)) == {"charge.succeeded": 4, "charge.failed": 4}
    data = company_api.get("/events").json()[0]["data"]
    assert data == history[-1]


@pytest.mark.django_db
def test_the_whole_body_is_validated_before_anything_runs(company_api, shop):
    wallet = WalletFactory(balance=Decimal("100.00"))
    response = bulk(
        company_api,
        [
            {"wallet": wallet.token, "amount": "1.00"},
            {"wallet": wallet.token, "amount": "1.001"},
            {"wallet": wallet.token},
            {"wallet": wallet.token, "amount": "1", "summary": "x" * 256},
        ],
    )
    errors = assert_problem(response, 400, "validation_error")["errors"]
    assert set(errors) == {"charges.1.amount", "charges.2.amount", "charges.3.summary"}
    assert not Operation.objects.exists() and current_balance(wallet) == Decimal("100.00")
    for body in ({"charges": []}, {}, {"charges": "x"}, {"charges": [{"wallet": wallet.token, "amount": "1"}] * 1001}):
        errors = assert_problem(company_api.post("/wallet/charges", body, format="json"), 400, "validation_error")
        assert "charges" in errors["errors"]
    # The largest batch the contract allows, with the longest summaries, fits in a request.
    longest = {"wallet": wallet.token, "amount": "0.01", "summary": "é" * 255}
    assert bulk(company_api, [longest] * 1000).status_code == 200


@pytest.mark.django_db
def test_only_companies_with_a_wallet_may_charge_in_bulk(client_api, company_api):
    wallet = WalletFactory(balance=Decimal("100.00"))
    assert_problem(bulk(client_api, [{"wallet": wallet.token, "amount": "1"}]), 403, "permission_denied")
    assert_problem(bulk(company_api, [{"wallet": wallet.token, "amount": "1"}]), 409, "merchant_wallet_missing")
    assert not Operation.objects.exists()


@pytest.mark.django_db
def test_an_idempotency_key_replays_the_whole_answer(company_api, shop):
    wallet = WalletFactory(balance=Decimal("100.00"))
    items = [{"wallet": wallet.token, "amount": "10.00"}, {"wallet": wallet.token, "amount": "95.00"}]
    first = bulk(company_api, items, HTTP_IDEMPOTENCY_KEY="batch-1")
    again = bulk(company_api, items, HTTP_IDEMPOTENCY_KEY="batch-1")
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Operation.objects.count() == 2 and current_balance(wallet) == Decimal("90.00")
    assert_problem(bulk(company_api, items[:1], HTTP_IDEMPOTENCY_KEY="batch-1"), 422, "idempotency_key_reused")


@pytest.mark.django_db
def test_holds_count_and_pending_credits_fold(company_api, company_user, shop):
    wallet = WalletFactory(balance=Decimal("50.00"))
    rival = CompanyFactory().user
    WalletFactory(owner=rival)
    services.hold_create(merchant=rival, wallet_token=wallet.token, amount=Decimal("30"))
    other_shop = WalletFactory(owner=CompanyFactory().user)
    from wallets.models import PendingCredit

    PendingCredit.objects.create(wallet=other_shop, amount=Decimal("7.00"))
    results = bulk(
        company_api,
        [
            {"wallet": wallet.token, "amount": "20.01"},
            {"wallet": wallet.token, "amount": "20.00"},
            {"wallet": other_shop.token, "amount": "7.00"},
        ],
    ).json()["results"]
    assert [result["status"] for result in results] == [402, 200, 200]
    assert not PendingCredit.objects.filter(wallet=other_shop).exists()
    assert current_balance(other_shop) == Decimal("0.00")


@pytest.mark.django_db
def test_a_batch_costs_the_same_statements_whatever_its_size(company_api, shop):
    wallets = [WalletFactory(balance=Decimal("10.00")) for _ in range(40)]
    small = [{"wallet": wallets[0].token, "amount": "1.00"}]
    large = [{"wallet": wallet.token, "amount": amount} for wallet in wallets for amount in ("1.00", "20.00")]
    # key, parties (with the operations' ids), the function (locks, money, debits, operations, events, credit)
    with assert_max_queries(3):
        assert bulk(company_api, small).status_code == 200
    with assert_max_queries(3):
        results = bulk(company_api, large).json()["results"]
    assert Counter(result["status"] for result in results) == {200: 40, 402: 40}


@pytest.mark.django_db(transaction=True)
def test_crossing_batches_on_the_same_wallets_neither_deadlock_nor_overdraw():
    merchants = [CompanyFactory().user for _ in range(4)]
    for merchant in merchants:
        WalletFactory(owner=merchant)
    customers = []
    for _ in range(6):
        customer = WalletFactory(owner=ClientFactory().user)
        services.wallet_deposit(owner=customer.owner, wallet_token=customer.token, amount=Decimal("10.00"))
        customers.append(customer)
    apis = [authenticated_client(merchant) for merchant in merchants]
    # Each batch charges every customer, in a different order: 4 x 6 charges of 4.00 on 10.00 each.
    batches = [
        [{"wallet": c.token, "amount": "4.00"} for c in (customers if i % 2 else customers[::-1])] for i in range(4)
    ]
    responses = race([lambda api=api, batch=batch: bulk(api, batch) for api, batch in zip(apis, batches, strict=True)])
    assert [response.status_code for response in responses] == [200] * 4
    statuses = Counter(result["status"] for response in responses for result in response.json()["results"])
    assert statuses == {200: 12, 402: 12}  # two 4.00 charges fit in each 10.00
    assert all(current_balance(customer) == Decimal("2.00") for customer in customers)
    assert ledger_audit().ok


@pytest.mark.django_db
def test_the_ledger_tables_carry_no_index_that_only_costs_writes():
    """Every index of the tables a charge inserts into is one more entry per row: the public id's LIKE index
    (nothing searches ids by prefix) is gone, and a hold's operations are indexed only where there is a hold."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('events_event', 'wallets_operation')"
        )
        indexes = dict(cursor.fetchall())
    assert not [name for name in indexes if name.endswith("_like")]
    holds = [definition for definition in indexes.values() if "(hold_id)" in definition]
    assert holds == [
        "CREATE INDEX operation_hold_idx ON public.wallets_operation USING btree (hold_id) WHERE (hold_id IS NOT NULL)"
    ]


@pytest.mark.django_db(transaction=True)
def test_a_batch_that_would_overflow_the_company_balance_leaves_nothing_behind():
    """The batch runs as one statement in autocommit: refused as a whole, whether the company's lock is free
    (its balance's CHECK constraint) or held (the pending credit would make money that could never be folded)."""
    import psycopg
    from django.db import connection

    from wallet_service.money import MAX_BALANCE
    from wallets.models import PendingCredit

    company = CompanyFactory().user
    shop = WalletFactory(owner=company, balance=MAX_BALANCE - Decimal("1.00"))
    api = authenticated_client(company)
    customer = WalletFactory(balance=Decimal("100.00"))
    items = [{"wallet": customer.token, "amount": "0.60"}, {"wallet": customer.token, "amount": "0.60"}]
    assert "amount" in assert_problem(bulk(api, items), 400, "validation_error")["errors"]
    params = connection.get_connection_params()
    with psycopg.connect(**params) as other:  # another transaction holds the company's wallet
        other.execute("SELECT 1 FROM wallets_wallet WHERE id = %s FOR NO KEY UPDATE", [shop.pk])
        assert "amount" in assert_problem(bulk(api, items), 400, "validation_error")["errors"]
        assert not Operation.objects.exists() and not Event.objects.exists() and not PendingCredit.objects.exists()
        # A batch that fits is credited without waiting for that lock: as a pending credit, counted in the answer.
        body = bulk(api, [{"wallet": customer.token, "amount": "0.10"}]).json()
        assert [result["status"] for result in body["results"]] == [200]
        assert body["balance"] == str(MAX_BALANCE - Decimal("0.90"))
        assert list(PendingCredit.objects.values_list("wallet_id", "amount")) == [(shop.pk, Decimal("0.10"))]
    assert (current_balance(customer), current_balance(shop)) == (Decimal("99.90"), MAX_BALANCE - Decimal("0.90"))
    assert (Operation.objects.count(), Event.objects.count()) == (1, 2)
    assert [result["status"] for result in bulk(api, items[:1]).json()["results"]] == [200]  # folds the pending credit
    assert not PendingCredit.objects.exists() and current_balance(shop) == MAX_BALANCE - Decimal("0.30")


@pytest.mark.django_db(transaction=True)
def test_a_batch_bringing_more_than_one_amount_s_maximum_is_credited_while_the_company_wallet_is_busy():
    """Credited without waiting, the batch's total becomes pending credits: each within one operation's
    maximum (the table's CHECK), so a batch of large charges is not refused just because the lock was taken."""
    import psycopg
    from django.db import connection

    from wallet_service.money import MAX_AMOUNT
    from wallets.models import PendingCredit

    company = CompanyFactory().user
    shop = WalletFactory(owner=company)
    api = authenticated_client(company)
    customers = [WalletFactory() for _ in range(3)]
    for customer in customers:
        services.wallet_deposit(owner=customer.owner, wallet_token=customer.token, amount=MAX_AMOUNT)
    items = [
        {"wallet": customer.token, "amount": str(amount)}
        for customer, amount in zip(customers, (MAX_AMOUNT, MAX_AMOUNT, Decimal("0.01")), strict=True)
    ]
    with psycopg.connect(
        **connection.get_connection_params()
    ) as other:  # another transaction holds the company's wallet
        other.execute("SELECT 1 FROM wallets_wallet WHERE id = %s FOR NO KEY UPDATE", [shop.pk])
        response = bulk(api, items)
        assert response.status_code == 200, response.content
        assert [result["status"] for result in response.json()["results"]] == [200, 200, 200]
        total = 2 * MAX_AMOUNT + Decimal("0.01")
        assert response.json()["balance"] == str(total)
        assert sorted(PendingCredit.objects.values_list("amount", flat=True)) == [
            Decimal("0.01"),
            MAX_AMOUNT,
            MAX_AMOUNT,
        ]
    assert current_balance(shop) == total
    assert ledger_audit().ok


@pytest.mark.django_db
def test_a_batch_with_nothing_to_record_answers_each_item_and_writes_nothing(company_api, shop):
    response = bulk(
        company_api, [{"wallet": "no-such-wallet", "amount": "1.00"}, {"wallet": shop.token, "amount": "1"}]
    )
    assert response.status_code == 200, response.content
    assert response.json()["results"] == [{"status": 404, "code": "not_found"}, {"status": 400, "code": "same_wallet"}]
    assert response.json()["balance"] == "0.00"
    assert not Operation.objects.exists() and not Event.objects.exists()


@pytest.mark.django_db
def test_items_refused_past_the_company_s_limit_on_a_wallet_are_429_and_leave_no_trace(settings, company_api, shop):
    settings.WALLET_SERVICE_REFUSED_ATTEMPTS_PER_HOUR = 3
    customer, other = WalletFactory(balance=Decimal("50.00")), WalletFactory(balance=Decimal("1.00"))
    # A lone refused charge counts toward the limit, as the batch's refusals do, in order.
    lone = company_api.post("/wallet/charge", {"wallet": customer.token, "amount": "100.00"}, format="json")
    assert_problem(lone, 402, "insufficient_funds")
    response = bulk(
        company_api,
        [
            {"wallet": customer.token, "amount": "100.00"},  # the 2nd refusal
            {"wallet": customer.token, "amount": "75.00"},  # the 3rd
            {"wallet": customer.token, "amount": "60.00"},  # past the limit: bisection stops here
            {"wallet": customer.token, "amount": "10.00"},  # a charge that fits is never limited
            {"wallet": other.token, "amount": "5.00"},  # another wallet has its own count
            {"wallet": customer.token, "amount": "45.00"},
        ],
    )
    assert response.status_code == 200, response.content
    statuses = [(item["status"], item.get("code")) for item in response.json()["results"]]
    assert statuses == [
        (402, "insufficient_funds"),
        (402, "insufficient_funds"),
        (429, "throttled"),
        (200, None),
        (402, "insufficient_funds"),
        (429, "throttled"),
    ]
    assert all("operation" not in item for item in response.json()["results"] if item["status"] == 429)
    assert Operation.objects.filter(success=False, source=customer).count() == 3
    assert Operation.objects.filter(success=False).count() == 4
    assert Event.objects.filter(type="charge.failed").count() == 2 * 4
    assert current_balance(customer) == Decimal("40.00") and current_balance(shop) == Decimal("10.00")
