from decimal import Decimal

import factory
from factory.django import DjangoModelFactory

from accounts.tests.factories import ClientFactory
from wallets.models import Operation, Wallet


class WalletFactory(DjangoModelFactory):
    """A wallet with a balance set directly; tests about history create operations with services."""

    class Meta:
        model = Wallet

    owner = factory.LazyFunction(lambda: ClientFactory().user)
    balance = Decimal("0.00")


class DepositFactory(DjangoModelFactory):
    """A ledger row only (the balance is not touched): for tests about reading history."""

    class Meta:
        model = Operation

    kind = Operation.Kind.DEPOSIT
    source = None
    target = factory.SubFactory(WalletFactory)
    amount = Decimal("10.00")
    success = True


def current_balance(wallet: Wallet) -> Decimal:
    """The wallet's whole balance, pending credits included, as the API reports it."""
    return Wallet.objects.with_current_balance().get(pk=wallet.pk).current_balance
