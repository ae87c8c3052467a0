"""The charge in one statement (wallets.sql.CHARGE_AT_ONCE): when it may decide alone, and that it writes nothing
and leaves the decision to the transactional path whenever that path could decide otherwise.

Transactional tests: the service runs in autocommit as in production (no outer transaction), so the one
statement commits by itself. Each test first makes the process know the merchant's wallet (a charge through the
transactional path), as a server worker knows it after a company's first charge.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Company
from accounts.tests.factories import ClientFactory, CompanyFactory
from conftest import authenticated_client
from events.models import Event
from wallet_service.money import MAX_BALANCE
from wallet_service.tests.utils import behind_a_lock, race
from wallets import services
from wallets.audit import ledger_audit
from wallets.errors import BalanceOverflow, InsufficientFunds
from wallets.models import Operation, PendingCredit
from wallets.tests.factories import WalletFactory, current_balance
from wallets.tests.test_hold_races import funded
from wallets.tests.test_hot_merchant import HeldWallet

pytestmark = pytest.mark.django_db(transaction=True)

CENT = Decimal("0.01")


def known_merchant():
    """A company with a wallet that this process knows (its first charge went through the transactional path)."""
    merchant = CompanyFactory().user
    shop = WalletFactory(owner=merchant)
    other = funded(ClientFactory().user, "1.00")
    services.wallet_charge(merchant=merchant, wallet_token=other.token, amount=CENT)
    assert services._merchant_wallets[merchant.pk][0] == shop.pk
    return merchant, shop


def statements(call):
    with CaptureQueriesContext(connection) as captured:
        result = call()
    return result, [query["sql"] for query in captured.captured_queries]


def charge(merchant, wallet, amount: str):
    return services.wallet_charge(merchant=merchant, wallet_token=wallet.token, amount=Decimal(amount))


def event_data(operation_id: int) -> dict[int, dict]:
    """The operation's events by owner, without what differs between two writes (event id)."""
    return {
        event.owner_id: (event.type, {k: v for k, v in event.data.items() if k not in ("id", "date")})
        for event in Event.objects.filter(data__id=operation_id)
    }


def test_a_successful_charge_is_one_statement_and_writes_what_the_transactional_path_writes():
    merchant, shop = known_merchant()
    services._merchant_wallets.clear()
    customer = funded(ClientFactory().user, "100.00")
    slow, slow_sql = statements(lambda: charge(merchant, customer, "10.00"))
    fast, fast_sql = statements(lambda: charge(merchant, customer, "10.00"))
    assert len(slow_sql) == 4 and len(fast_sql) == 1  # BEGIN, lock, writes, COMMIT against one statement
    assert slow.target.current_balance == Decimal("10.01") and fast.target.current_balance == Decimal("20.01")
    assert (fast.source_id, fast.target_id, fast.target.held) == (customer.pk, shop.pk, Decimal("0.00"))
    assert current_balance(customer) == Decimal("80.00")
    assert current_balance(shop) == Decimal("20.01")
    # The same events, for the same owners: the statement found the customer's owner itself.
    assert event_data(fast.id) == event_data(slow.id)
    assert set(event_data(fast.id)) == {customer.owner_id, merchant.pk}
    assert ledger_audit().ok


def test_a_short_charge_is_decided_by_the_transactional_path_and_recorded():
    merchant, shop = known_merchant()
    customer = funded(ClientFactory().user, "5.00")
    with pytest.raises(InsufficientFunds) as refused:
        charge(merchant, customer, "5.01")
    assert refused.value.operation.success is False
    assert current_balance(customer) == Decimal("5.00")
    assert Operation.objects.filter(source=customer, success=False).count() == 1


def test_a_stale_snapshot_falls_back_and_sees_the_hold_placed_while_it_waited():
    """The statement waits for the wallet while a hold is placed; its subqueries see the snapshot from before
    (no hold). Deciding on it would spend money the hold reserves: it must leave the decision to the
    transactional path, which reads the held amount again."""
    merchant, _ = known_merchant()
    customer = funded(ClientFactory().user, "100.00")
    outcome = behind_a_lock(
        lambda: services.hold_create(merchant=merchant, wallet_token=customer.token, amount=Decimal("80.00")),
        lambda: charge(merchant, customer, "30.00"),
        refused=InsufficientFunds,
    )
    assert isinstance(outcome, InsufficientFunds)  # 100 - 80 held leaves 20: 30 does not fit
    assert current_balance(customer) == Decimal("100.00")
    assert ledger_audit().ok


def test_twenty_charges_by_a_known_merchant_racing_for_one_balance_never_overdraw():
    merchant, shop = known_merchant()
    customer = funded(ClientFactory().user, "100.00")
    apis = [authenticated_client(merchant) for _ in range(20)]
    body = {"wallet": customer.token, "amount": "10.00", "summary": "race"}
    statuses = race([lambda api=api: api.post("/wallet/charge", body, format="json").status_code for api in apis])
    assert Counter(statuses) == {200: 10, 402: 10}
    assert current_balance(customer) == Decimal("0.00")
    assert current_balance(shop) == Decimal("100.01")
    assert ledger_audit().ok


def test_a_renamed_company_is_named_in_the_events_as_it_is_now():
    merchant, _ = known_merchant()
    Company.objects.filter(user=merchant).update(name="Renamed Ltd")
    customer = funded(ClientFactory().user, "10.00")
    operation = charge(merchant, customer, "1.00")
    assert event_data(operation.id)[customer.owner_id][1]["counterparty"] == {"kind": "company", "name": "Renamed Ltd"}
    # The transactional path ran, and the process now knows the new name: the next charge is one statement.
    _, sql = statements(lambda: charge(merchant, customer, "1.00"))
    assert len(sql) == 1


def test_a_company_charging_another_company_names_it_in_its_event():
    merchant, _ = known_merchant()
    payer = CompanyFactory()
    payer_wallet = funded(payer.user, "10.00")
    operation = charge(merchant, payer_wallet, "1.00")
    assert event_data(operation.id)[merchant.pk][1]["counterparty"] == {"kind": "company", "name": payer.name}
    assert current_balance(payer_wallet) == Decimal("9.00")


def test_a_company_charging_its_second_wallet_gets_one_event():
    merchant, shop = known_merchant()
    second = funded(merchant, "10.00")  # beyond the one-wallet limit, written directly
    operation = charge(merchant, second, "1.00")
    assert Event.objects.filter(data__id=operation.id).count() == 1
    assert current_balance(second) == Decimal("9.00")
    assert current_balance(shop) == Decimal("1.01")


def test_a_charge_that_would_overflow_the_busy_merchant_wallet_moves_nothing():
    """The credit would be left pending (the merchant's wallet is busy) past the maximum balance: refused, and,
    in autocommit, the statement must not have committed anything before the refusal."""
    merchant, shop = known_merchant()
    shop.balance = MAX_BALANCE - Decimal("0.50")
    shop.save(update_fields=["balance"])
    customer = funded(ClientFactory().user, "10.00")
    with HeldWallet(shop), pytest.raises(BalanceOverflow):
        charge(merchant, customer, "1.00")
    assert current_balance(customer) == Decimal("10.00")
    assert not PendingCredit.objects.exists()
    assert not Operation.objects.filter(source=customer, kind="charge").exists()


def test_a_charge_waiting_for_the_wallet_while_a_debit_commits_never_overdraws():
    """A deposit-less debit (another charge) holds the wallet; the waiting statement's snapshot still shows the
    old balance. It must not decide on it."""
    merchant, _ = known_merchant()
    customer = funded(ClientFactory().user, "50.00")
    outcome = behind_a_lock(
        lambda: charge(merchant, customer, "40.00"),
        lambda: charge(merchant, customer, "40.00"),
        refused=InsufficientFunds,
    )
    assert isinstance(outcome, InsufficientFunds)
    assert current_balance(customer) == Decimal("10.00")
    assert ledger_audit().ok


def test_an_idempotent_charge_by_a_known_merchant_executes_once():
    merchant, shop = known_merchant()
    customer = funded(ClientFactory().user, "10.00")
    api = authenticated_client(merchant)
    body = {"wallet": customer.token, "amount": "3.00"}
    first = api.post("/wallet/charge", body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = api.post("/wallet/charge", body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == again.status_code == 200
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert current_balance(customer) == Decimal("7.00")
    assert current_balance(shop) == Decimal("3.01")


def test_an_idempotent_short_charge_by_a_known_merchant_is_recorded_once_and_replayed():
    """Inside the key's transaction the one statement declines (and keeps the wallet locked); the transactional
    path then records the failed attempt in the same transaction, stored with the key."""
    merchant, _ = known_merchant()
    customer = funded(ClientFactory().user, "2.00")
    api = authenticated_client(merchant)
    body = {"wallet": customer.token, "amount": "3.00"}
    first = api.post("/wallet/charge", body, format="json", HTTP_IDEMPOTENCY_KEY="short")
    again = api.post("/wallet/charge", body, format="json", HTTP_IDEMPOTENCY_KEY="short")
    assert first.status_code == again.status_code == 402
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert Operation.objects.filter(source=customer, success=False).count() == 1
    assert current_balance(customer) == Decimal("2.00")


def test_an_idempotent_charge_over_the_maximum_balance_stores_nothing_and_may_be_retried():
    """The one statement fails inside the key's transaction: the whole transaction is rolled back (the key is
    not stored), the answer is the refusal, and the same key executes once the charge fits."""
    merchant, shop = known_merchant()
    shop.balance = MAX_BALANCE - Decimal("0.50")
    shop.save(update_fields=["balance"])
    customer = funded(ClientFactory().user, "10.00")
    api = authenticated_client(merchant)
    body = {"wallet": customer.token, "amount": "1.00"}
    refused = api.post("/wallet/charge", body, format="json", HTTP_IDEMPOTENCY_KEY="over")
    assert refused.status_code == 400, refused.content
    assert current_balance(customer) == Decimal("10.00")
    assert not Operation.objects.filter(source=customer, kind="charge").exists()
    shop.balance = Decimal("0.00")
    shop.save(update_fields=["balance"])
    retried = api.post("/wallet/charge", body, format="json", HTTP_IDEMPOTENCY_KEY="over")
    assert retried.status_code == 200 and "Idempotent-Replayed" not in retried
    assert current_balance(customer) == Decimal("9.00")
