"""The money services called directly: their guarantees hold whatever view calls them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection

from accounts.tests.factories import ClientFactory, CompanyFactory
from wallet_service.tests.utils import assert_max_queries
from wallets import services
from wallets.errors import (
    InsufficientFunds,
    MerchantWalletMissing,
    SameWallet,
    WalletLimitReached,
    WalletNotFound,
)
from wallets.models import Operation, PendingCredit, Wallet
from wallets.tests.factories import WalletFactory


@pytest.fixture
def merchant(db):
    return CompanyFactory().user


@pytest.mark.django_db
def test_wallet_create_respects_each_kind_of_limit(settings, merchant):
    services.wallet_create(owner=merchant)
    with pytest.raises(WalletLimitReached):
        services.wallet_create(owner=merchant)
    settings.WALLET_SERVICE_MAX_WALLETS_BY_CLIENT = 1
    client = ClientFactory().user
    services.wallet_create(owner=client)
    with pytest.raises(WalletLimitReached):
        services.wallet_create(owner=client)
    assert Wallet.objects.count() == 2


@pytest.mark.django_db
def test_wallet_deposit_returns_the_operation_with_the_updated_wallet():
    wallet = WalletFactory(balance=Decimal("1.00"))
    operation = services.wallet_deposit(owner=wallet.owner, wallet_token=wallet.token, amount=Decimal("2.50"))
    assert operation.target.balance == Decimal("3.50")
    assert operation.created_at is not None
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("3.50")


@pytest.mark.django_db
def test_wallet_deposit_only_into_own_wallet():
    wallet = WalletFactory()
    with pytest.raises(WalletNotFound):
        services.wallet_deposit(owner=ClientFactory().user, wallet_token=wallet.token, amount=Decimal("1"))


@pytest.mark.django_db
def test_wallet_charge_checks_in_the_contracts_order(merchant):
    customer = WalletFactory(balance=Decimal("10"))
    with pytest.raises(MerchantWalletMissing):
        services.wallet_charge(merchant=merchant, wallet_token="nope", amount=Decimal("1"))
    own = services.wallet_create(owner=merchant)
    with pytest.raises(WalletNotFound):
        services.wallet_charge(merchant=merchant, wallet_token="nope", amount=Decimal("1"))
    with pytest.raises(SameWallet):
        services.wallet_charge(merchant=merchant, wallet_token=own.token, amount=Decimal("1"))
    with pytest.raises(InsufficientFunds) as raised:
        services.wallet_charge(merchant=merchant, wallet_token=customer.token, amount=Decimal("10.01"))
    assert raised.value.operation.success is False
    assert Operation.objects.get() == raised.value.operation


@pytest.mark.django_db
def test_wallet_charge_refuses_a_client_as_merchant():
    client = ClientFactory().user
    WalletFactory(owner=client)
    customer = WalletFactory(balance=Decimal("10"))
    with pytest.raises(services.NotAMerchant):
        services.wallet_charge(merchant=client, wallet_token=customer.token, amount=Decimal("1"))
    assert not Operation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_failed_charge_is_committed_before_insufficient_funds_is_raised(merchant):
    services.wallet_create(owner=merchant)
    customer = WalletFactory(balance=Decimal("1"))
    with pytest.raises(InsufficientFunds):
        services.wallet_charge(merchant=merchant, wallet_token=customer.token, amount=Decimal("2"))
    assert not connection.in_atomic_block
    # Read it back on a fresh connection: it is committed, not just visible to this transaction.
    connection.close()
    assert Operation.objects.filter(success=False, amount=Decimal("2")).count() == 1


@pytest.mark.django_db
def test_charge_locks_only_the_charged_wallet_and_credits_the_merchant_without_waiting(merchant):
    merchant_wallet = services.wallet_create(owner=merchant)
    customer = WalletFactory(balance=Decimal("10"))
    with assert_max_queries(4) as captured:
        services.wallet_charge(merchant=merchant, wallet_token=customer.token, amount=Decimal("1"))
    statements = [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert statements[0].rstrip().endswith("FOR NO KEY UPDATE OF w")
    assert sum("FOR NO KEY UPDATE SKIP LOCKED" in sql for sql in statements) == 1
    assert not any(" FOR UPDATE" in sql for sql in statements)
    # Nobody held the merchant's wallet: the credit went straight into its balance.
    merchant_wallet.refresh_from_db()
    assert merchant_wallet.balance == Decimal("1.00")
    assert not PendingCredit.objects.exists()
