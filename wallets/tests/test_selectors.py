"""Selectors that read wallets with hand-written SQL must report what the ORM's definition does."""

from __future__ import annotations

from decimal import Decimal

import pytest

from wallets import selectors
from wallets.errors import WalletNotFound
from wallets.models import PendingCredit
from wallets.tests.factories import WalletFactory, current_balance


@pytest.mark.django_db
def test_wallet_get_and_list_count_pending_credits_as_with_current_balance_does(company_user, client_user):
    shop = WalletFactory(owner=company_user, balance=Decimal("10.00"))
    PendingCredit.objects.create(wallet=shop, amount=Decimal("2.50"))
    PendingCredit.objects.create(wallet=shop, amount=Decimal("0.25"))
    first, second = WalletFactory(owner=client_user, balance=Decimal("1.00")), WalletFactory(owner=client_user)

    assert selectors.wallet_get(owner=company_user, token=shop.token).current_balance == Decimal("12.75")
    assert current_balance(shop) == Decimal("12.75")
    listed = selectors.wallet_list(owner=client_user)
    assert [(wallet.token, wallet.current_balance) for wallet in listed] == [
        (first.token, Decimal("1.00")),
        (second.token, Decimal("0.00")),
    ]
    assert all(str(wallet.current_balance).endswith(".00") for wallet in listed)


@pytest.mark.django_db
def test_wallet_get_is_scoped_to_the_owner(company_user, client_user):
    shop = WalletFactory(owner=company_user)
    with pytest.raises(WalletNotFound):
        selectors.wallet_get(owner=client_user, token=shop.token)
    assert selectors.wallet_list(owner=client_user) == []
