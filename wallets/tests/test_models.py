"""Invariants the database itself enforces on wallets and the ledger, whatever code writes the rows."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from wallets.models import Operation, Wallet
from wallets.tests.factories import DepositFactory, WalletFactory


@pytest.mark.django_db
def test_a_negative_balance_is_refused_by_the_database():
    wallet = WalletFactory(balance=Decimal("1.00"))
    with pytest.raises(IntegrityError), transaction.atomic():
        Wallet.objects.filter(pk=wallet.pk).update(balance=Decimal("-0.01"))


@pytest.mark.django_db
@pytest.mark.parametrize("amount", [Decimal("0"), Decimal("-1"), Decimal("1000000000.01")])
def test_an_out_of_range_amount_is_refused_by_the_database(amount):
    wallet = WalletFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Operation.objects.create(kind="deposit", target=wallet, amount=amount, success=True)


@pytest.mark.django_db
def test_operation_shapes_are_enforced():
    wallet, other = WalletFactory(), WalletFactory()
    invalid = [
        {"kind": "deposit", "source": other, "target": wallet, "success": True},  # a deposit has no source
        {"kind": "deposit", "source": None, "target": wallet, "success": False},  # deposits do not fail
        {"kind": "charge", "source": None, "target": wallet, "success": True},  # a charge has a source
        {"kind": "charge", "source": wallet, "target": wallet, "success": True},  # not from a wallet to itself
        {"kind": "refund", "source": other, "target": wallet, "success": True},
    ]
    for fields in invalid:
        with pytest.raises(IntegrityError), transaction.atomic():
            Operation.objects.create(amount=Decimal("1"), **fields)


@pytest.mark.django_db
def test_wallet_tokens_are_unique_in_the_database():
    wallet = WalletFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        WalletFactory(token=wallet.token)


@pytest.mark.django_db
def test_the_ledger_is_append_only():
    operation = DepositFactory()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Operation.objects.filter(pk=operation.pk).update(amount=Decimal("99"))
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Operation.objects.filter(pk=operation.pk).delete()
    operation.refresh_from_db()
    assert operation.amount == Decimal("10.00")


@pytest.mark.django_db
def test_operation_date_comes_from_the_database_clock():
    wallet = WalletFactory()
    with connection.cursor() as cursor:
        # A row written without a date gets the database's statement time, not a value from Python.
        cursor.execute(
            "INSERT INTO wallets_operation (kind, target_id, amount, summary, success) VALUES (%s, %s, %s, %s, %s)",
            ["deposit", wallet.pk, Decimal("1.00"), "", True],
        )
        cursor.execute("SELECT statement_timestamp()")
        (after,) = cursor.fetchone()
    operation = Operation.objects.get()
    assert operation.created_at <= after
    assert (after - operation.created_at).total_seconds() < 5
    assert DepositFactory().created_at >= operation.created_at  # returned to Python on insert
