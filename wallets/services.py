"""Every write to wallets and the ledger. Each function owns its transaction.

Locking discipline (PostgreSQL; under SQLite every transaction takes the database write lock
when it begins, which serialises the same sections):
- a wallet row is locked (``SELECT ... FOR UPDATE``) before its balance is read for a decision
  or changed, and stays locked until the operation that explains the change is committed;
- a charge locks both of its wallets in one statement, in primary-key order, so that two
  charges crossing the same pair of wallets take the locks in the same order and cannot
  deadlock;
- balances are checked after the lock, never before.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from accounts.models import User
from wallet_service.api.errors import FieldError, ServiceError
from wallets.errors import InsufficientFunds, MerchantWalletMissing, SameWallet, WalletLimitReached, WalletNotFound
from wallets.models import MAX_BALANCE, Operation, Wallet


class NotAMerchant(ServiceError):
    code = "permission_denied"
    default_detail = "Only companies can charge wallets."


def wallet_limit(owner: User) -> int:
    """How many wallets ``owner`` may hold; 0 means no limit."""
    if owner.kind == User.Kind.COMPANY:
        return 1
    return settings.WALLET_SERVICE_MAX_WALLETS_BY_CLIENT


def wallet_create(*, owner: User) -> Wallet:
    """Open a wallet for ``owner`` with a zero balance, within the owner's wallet limit.

    Raises WalletLimitReached when the owner already has as many wallets as allowed. Two
    simultaneous creates cannot both pass the limit: the owner's row is locked first.
    """
    with transaction.atomic():
        limit = wallet_limit(owner)
        if limit:
            # Lock the owner's row: concurrent creates for one owner count and insert one after the other.
            User.objects.select_for_update().filter(pk=owner.pk).values_list("pk", flat=True).get()
            if Wallet.objects.filter(owner=owner).count() >= limit:
                raise WalletLimitReached()
        return Wallet.objects.create(owner=owner)


def wallet_deposit(*, owner: User, wallet_token: str, amount: Decimal, summary: str = "") -> Operation:
    """Add ``amount`` to one of ``owner``'s wallets and record the deposit, atomically.

    Raises WalletNotFound if ``wallet_token`` is not one of ``owner``'s wallets (another user's
    wallet is not found either). Returns the operation; ``operation.target`` is the wallet with
    its new balance.
    """
    with transaction.atomic():
        # Lock the wallet: concurrent deposits and charges on it serialise here, so none is lost.
        wallet = Wallet.objects.select_for_update().filter(token=wallet_token, owner=owner).first()
        if wallet is None:
            raise WalletNotFound()
        new_balance = wallet.balance + amount
        if new_balance > MAX_BALANCE:
            raise FieldError("amount", f"The deposit would take the balance over {MAX_BALANCE}.")
        wallet.balance = new_balance
        wallet.save(update_fields=["balance"])
        return Operation.objects.create(
            kind=Operation.Kind.DEPOSIT, source=None, target=wallet, amount=amount, summary=summary, success=True
        )


def wallet_charge(*, merchant: User, wallet_token: str, amount: Decimal, summary: str = "") -> Operation:
    """Move ``amount`` from the wallet ``wallet_token`` to ``merchant``'s wallet, atomically.

    Checks, in the contract's order: the merchant has a wallet (MerchantWalletMissing), the
    charged wallet exists (WalletNotFound), it is not the merchant's own (SameWallet), and its
    balance covers the amount. When it does not, nothing moves, the failed attempt is recorded
    in the ledger and committed, and then InsufficientFunds is raised carrying that record.
    Returns the successful operation; ``operation.target`` is the merchant's wallet with its new
    balance.
    """
    if merchant.kind != User.Kind.COMPANY:
        raise NotAMerchant()
    with transaction.atomic():
        # One statement locks the merchant's wallet and the charged wallet in primary-key order:
        # charges crossing the same two wallets lock them in the same order (no deadlock), and
        # charges racing for one balance check it one after the other (no double spend).
        wallets = list(
            Wallet.objects.select_for_update().filter(Q(owner=merchant) | Q(token=wallet_token)).order_by("pk")
        )
        merchant_wallet = next((wallet for wallet in wallets if wallet.owner_id == merchant.pk), None)
        charged_wallet = next((wallet for wallet in wallets if wallet.token == wallet_token), None)
        if merchant_wallet is None:
            raise MerchantWalletMissing()
        if charged_wallet is None:
            raise WalletNotFound()
        if charged_wallet.pk == merchant_wallet.pk:
            raise SameWallet()
        # A short balance is a business outcome, not an error: the attempt is recorded as failed.
        success = charged_wallet.balance >= amount
        if success:
            charged_wallet.balance -= amount
            merchant_wallet.balance += amount
            if merchant_wallet.balance > MAX_BALANCE:
                raise FieldError("amount", f"The charge would take your balance over {MAX_BALANCE}.")
            charged_wallet.save(update_fields=["balance"])
            merchant_wallet.save(update_fields=["balance"])
        operation = Operation.objects.create(
            kind=Operation.Kind.CHARGE,
            source=charged_wallet,
            target=merchant_wallet,
            amount=amount,
            summary=summary,
            success=success,
        )
    # Outside the atomic block: the failed attempt is committed before the error is raised.
    if not operation.success:
        raise InsufficientFunds(operation)
    return operation
