"""manage.py audit_ledger: passes on a consistent ledger, names every wallet that drifts."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from accounts.tests.factories import CompanyFactory
from wallets import services
from wallets.errors import InsufficientFunds
from wallets.models import Hold, Operation, Wallet
from wallets.tests.factories import WalletFactory

pytestmark = pytest.mark.django_db


def audit(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("audit_ledger", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def ledger():
    """Three wallets moved only through the services: deposits, charges and a failed charge."""
    merchant = CompanyFactory().user
    shop = services.wallet_create(owner=merchant)
    a, b = WalletFactory(), WalletFactory()
    services.wallet_deposit(owner=a.owner, wallet_token=a.token, amount=Decimal("100.00"))
    services.wallet_deposit(owner=b.owner, wallet_token=b.token, amount=Decimal("20.50"))
    services.wallet_charge(merchant=merchant, wallet_token=a.token, amount=Decimal("30.25"))
    services.wallet_charge(merchant=merchant, wallet_token=b.token, amount=Decimal("20.50"))
    with pytest.raises(InsufficientFunds):
        services.wallet_charge(merchant=merchant, wallet_token=b.token, amount=Decimal("1.00"))
    return {"shop": shop, "a": a, "b": b}


def test_a_consistent_ledger_passes_with_a_summary(ledger):
    out, _ = audit("--batch-size", "2")  # several batches
    assert "Audited 3 wallets and 5 operations (1 failed charges and holds)" in out
    assert "Sum of balances:             120.50" in out
    assert "Sum of successful deposits:  120.50" in out
    assert "Ledger audit passed." in out


def test_a_balance_off_its_ledger_fails_and_names_the_wallet(ledger):
    Wallet.objects.filter(pk=ledger["a"].pk).update(balance=Decimal("70.00"))  # ledger says 69.75
    out = StringIO()
    with pytest.raises(CommandError, match="1 wallets differ from their ledger; balances add up to 0.25 more"):
        call_command("audit_ledger", stdout=out, stderr=StringIO())
    assert f"DRIFT {ledger['a'].token} balance=70.00 ledger=69.75 difference=0.25" in out.getvalue()
    assert ledger["b"].token not in out.getvalue()


def test_an_operation_without_its_balance_change_is_drift_on_both_sides(ledger):
    # A charge row written without moving the balances: the total still matches, both wallets drift.
    Operation.objects.create(
        kind="charge", source=ledger["a"], target=ledger["shop"], amount=Decimal("5"), success=True
    )
    out = StringIO()
    with pytest.raises(CommandError, match="^Ledger audit FAILED: 2 wallets differ from their ledger.$"):
        call_command("audit_ledger", stdout=out, stderr=StringIO())
    assert ledger["a"].token in out.getvalue() and ledger["shop"].token in out.getvalue()


def test_a_negative_balance_fails(ledger):
    with connection.cursor() as cursor:  # the CHECK constraint forbids it; undone with the test's transaction
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # fire the deferred FK checks the ALTER would wait on
        cursor.execute(f"ALTER TABLE {Wallet._meta.db_table} DROP CONSTRAINT wallet_balance_not_negative")
    Wallet.objects.filter(pk=ledger["b"].pk).update(balance=Decimal("-1.00"))
    with pytest.raises(CommandError, match="1 wallets are below zero"):
        audit()


def test_progress_is_shown_when_asked_and_not_by_default_off_a_terminal(ledger):
    _, err = audit("--progress", "--batch-size", "1")
    assert "audited 1/3 wallets (33%)" in err and "audited 3/3 wallets (100%)" in err
    assert audit()[1] == ""


def test_an_empty_database_passes():
    out, _ = audit()
    assert "Audited 0 wallets and 0 operations" in out and "Ledger audit passed." in out


def test_a_batch_size_below_one_is_refused():
    with pytest.raises(CommandError, match="--batch-size"):
        audit("--batch-size", "0")


def test_holds_captures_and_refunds_through_the_services_keep_the_ledger_clean(ledger):
    merchant = CompanyFactory().user
    shop = WalletFactory(owner=merchant)
    customer = WalletFactory()
    services.wallet_deposit(owner=customer.owner, wallet_token=customer.token, amount=Decimal("100"))
    hold = services.hold_create(merchant=merchant, wallet_token=customer.token, amount=Decimal("40"))
    services.hold_capture(merchant=merchant, hold_id=hold.public_id, amount=Decimal("15"), final=False)
    charge = services.wallet_charge(merchant=merchant, wallet_token=customer.token, amount=Decimal("20"))
    services.wallet_refund(merchant=merchant, operation_id=charge.id, amount=Decimal("5"))
    out, _ = audit()
    assert "Ledger audit passed." in out
    assert shop.pk  # the shop received 15 + 20 - 5, and the audit agreed


def test_the_hold_and_refund_invariants_are_checked(ledger):
    merchant = CompanyFactory().user
    shop = WalletFactory(owner=merchant)
    customer = WalletFactory()
    services.wallet_deposit(owner=customer.owner, wallet_token=customer.token, amount=Decimal("10"))
    # Written past the services, as a bug would: a hold above the balance, a capture amount with no
    # capture operation, and two refunds adding up to more than their charge.
    Hold.objects.create(wallet=customer, merchant_wallet=shop, amount=Decimal("11"), expires_at="2100-01-01T00:00:00Z")
    Hold.objects.create(
        wallet=shop, merchant_wallet=customer, amount=Decimal("5"), captured=Decimal("5"), status="captured",
        expires_at="2100-01-01T00:00:00Z",
    )  # fmt: skip
    charge = Operation.objects.create(kind="charge", source=customer, target=shop, amount=Decimal("1"), success=True)
    for _ in range(2):
        Operation.objects.create(
            kind="refund", source=shop, target=customer, amount=Decimal("1"), success=True, refund_of=charge
        )
    with pytest.raises(CommandError) as failed:
        audit()
    message = str(failed.value)
    assert "1 wallets hold more than their balance" in message
    assert "1 operations are refunded beyond their amount" in message
    assert "1 holds differ from the sum of their captures" in message
