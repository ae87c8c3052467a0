"""Every write to wallets and the ledger. Each function owns its transaction.

Locking discipline (PostgreSQL row locks):
- a wallet row is locked (``SELECT ... FOR NO KEY UPDATE``) before its balance is read for a
  decision or debited, and stays locked until the operation that explains the change commits;
- balances are checked after the lock, never before;
- a wallet's money is its ``balance`` plus its pending credits; whoever holds the lock folds the
  pending credits into the balance (delete and add, one statement), so the sum never changes;
- a transaction waits for one wallet lock at most (a charge waits only for the charged wallet;
  the merchant's is credited without waiting), so no two operations can deadlock.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import Subquery

from accounts.models import User
from wallet_service.api.errors import FieldError, ServiceError
from wallets import metrics
from wallets.errors import InsufficientFunds, MerchantWalletMissing, SameWallet, WalletLimitReached, WalletNotFound
from wallets.models import MAX_BALANCE, Operation, PendingCredit, Wallet


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
            User.objects.select_for_update(no_key=True).filter(pk=owner.pk).values_list("pk", flat=True).get()
            if Wallet.objects.filter(owner=owner).count() >= limit:
                raise WalletLimitReached()
        wallet = Wallet.objects.create(owner=owner)
        wallet.current_balance = wallet.balance
        return wallet


def _fold_and_add(wallet: Wallet, amount: Decimal, *, over_max: str) -> Decimal:
    """Under ``wallet``'s row lock: fold its pending credits into ``balance`` and add ``amount``
    (negative to debit). Returns the new balance, which is then the wallet's whole balance."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(FOLD_AND_ADD_SQL, {"wallet": wallet.pk, "amount": amount})
            (wallet.balance,) = cursor.fetchone()
    except (IntegrityError, DataError) as error:  # numeric overflow or the balance CHECK constraints
        raise FieldError("amount", over_max) from error
    return wallet.balance


FOLD_AND_ADD_SQL = f"""
WITH folded AS (DELETE FROM {PendingCredit._meta.db_table} WHERE wallet_id = %(wallet)s RETURNING amount)
UPDATE {Wallet._meta.db_table}
   SET balance = balance + %(amount)s + COALESCE((SELECT SUM(amount) FROM folded), 0)
 WHERE id = %(wallet)s
RETURNING balance
"""

# Credit a wallet without waiting for its lock, in one statement. ``free`` takes the lock if nobody
# holds it (SKIP LOCKED: never wait). If it did, the credit and every pending credit go into the
# balance (``folded``, ``credited``); if not, the credit is inserted as pending instead. Data-modifying
# CTEs run exactly once whatever the outer query reads; ``free`` is read by three of them, so it is
# evaluated once, and the lock is taken before the DELETE scans. The result is the wallet's whole
# balance after the credit: from the UPDATE, or (pending) the balance and pending credits this
# statement's snapshot sees plus this credit, whose new row that snapshot cannot see.
CREDIT_SQL = f"""
WITH free AS (SELECT id FROM {Wallet._meta.db_table} WHERE id = %(wallet)s FOR NO KEY UPDATE SKIP LOCKED),
     folded AS (DELETE FROM {PendingCredit._meta.db_table} WHERE wallet_id IN (SELECT id FROM free) RETURNING amount),
     credited AS (UPDATE {Wallet._meta.db_table}
                     SET balance = balance + %(amount)s + COALESCE((SELECT SUM(amount) FROM folded), 0)
                   WHERE id IN (SELECT id FROM free)
               RETURNING balance),
     pending AS (INSERT INTO {PendingCredit._meta.db_table} (wallet_id, amount)
                 SELECT %(wallet)s, %(amount)s WHERE NOT EXISTS (SELECT 1 FROM free)
                 RETURNING amount)
SELECT COALESCE(
    (SELECT balance FROM credited),
    (SELECT w.balance + %(amount)s
            + COALESCE((SELECT SUM(p.amount) FROM {PendingCredit._meta.db_table} p WHERE p.wallet_id = w.id), 0)
       FROM {Wallet._meta.db_table} w WHERE w.id = %(wallet)s)
)
"""


def _credit_without_waiting(wallet: Wallet, amount: Decimal, *, over_max: str) -> Decimal:
    """Add ``amount`` to ``wallet`` without waiting for its row lock; returns its whole balance after.

    A merchant's wallet receives every charge, and it is never checked for funds, so no charge
    waits for it: when the lock is free, the credit (and every pending credit) goes into the
    balance; when another transaction holds it, the credit is left as a PendingCredit row in this
    transaction, for the next holder of the lock to fold. Either way it commits with the charge.
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute(CREDIT_SQL, {"wallet": wallet.pk, "amount": amount})
            row = cursor.fetchone()
    except (IntegrityError, DataError) as error:  # numeric overflow or the balance CHECK constraints
        raise FieldError("amount", over_max) from error
    if row[0] > MAX_BALANCE:  # a pending credit must stay foldable
        raise FieldError("amount", over_max)
    return row[0]


def wallet_deposit(*, owner: User, wallet_token: str, amount: Decimal, summary: str = "") -> Operation:
    """Add ``amount`` to one of ``owner``'s wallets and record the deposit, atomically.

    Raises WalletNotFound if ``wallet_token`` is not one of ``owner``'s wallets (another user's
    wallet is not found either). Returns the operation; ``operation.target.current_balance`` is
    the wallet's whole balance after it.
    """
    with transaction.atomic():
        # Lock the wallet: concurrent deposits and charges on it serialise here, so none is lost.
        # NO KEY: inserting an operation that references the wallet need not wait for this lock.
        wallet = Wallet.objects.select_for_update(no_key=True).filter(token=wallet_token, owner=owner).first()
        if wallet is None:
            raise WalletNotFound()
        wallet.current_balance = _fold_and_add(
            wallet, amount, over_max=f"The deposit would take the balance over {MAX_BALANCE}."
        )
        metrics.record_deposit(amount=amount)
        return Operation.objects.create(
            kind=Operation.Kind.DEPOSIT, source=None, target=wallet, amount=amount, summary=summary, success=True
        )


def wallet_charge(*, merchant: User, wallet_token: str, amount: Decimal, summary: str = "") -> Operation:
    """Move ``amount`` from the wallet ``wallet_token`` to ``merchant``'s wallet, atomically.

    Checks, in the contract's order: the merchant has a wallet (MerchantWalletMissing), the
    charged wallet exists (WalletNotFound), it is not the merchant's own (SameWallet), and its
    balance covers the amount. When it does not, nothing moves, the failed attempt is recorded
    in the ledger and committed, and then InsufficientFunds is raised carrying that record.
    Returns the successful operation; ``operation.target.current_balance`` is the merchant's
    whole balance after it.

    Only the charged wallet is locked for the whole transaction: its balance is checked. The
    merchant's wallet is credited without waiting for its lock (see _credit_without_waiting), so a
    merchant receiving every charge is not a queue. Each charge waits for one lock at most, so no
    two charges, however they cross, can deadlock.
    """
    if merchant.kind != User.Kind.COMPANY:
        raise NotAMerchant()
    with transaction.atomic():
        # Lock the charged wallet: charges racing for one balance check and debit it one after the
        # other (no double spend). The same statement finds the merchant's wallet, unlocked: a
        # wallet's owner and token never change, and wallets are never deleted.
        merchants = Wallet.objects.filter(owner=merchant).order_by("pk")
        charged_wallet = (
            Wallet.objects.select_for_update(no_key=True, of=("self",))
            .select_related("owner")
            .only("token", "balance", "owner__kind")
            .annotate(
                merchant_wallet_id=Subquery(merchants.values("pk")[:1]),
                merchant_wallet_token=Subquery(merchants.values("token")[:1]),
            )
            .filter(token=wallet_token)
            .first()
        )
        if charged_wallet is None:
            if not merchants.exists():
                raise MerchantWalletMissing()
            raise WalletNotFound()
        if charged_wallet.merchant_wallet_id is None:
            raise MerchantWalletMissing()
        merchant_wallet = Wallet(pk=charged_wallet.merchant_wallet_id, token=charged_wallet.merchant_wallet_token)
        if charged_wallet.pk == merchant_wallet.pk:
            raise SameWallet()
        available = charged_wallet.balance
        if charged_wallet.owner.kind == User.Kind.COMPANY:
            # A merchant's wallet may hold pending credits: they are its money too.
            available = _fold_and_add(charged_wallet, Decimal("0.00"), over_max="Balance overflow.")
        # A short balance is a business outcome, not an error: the attempt is recorded as failed.
        success = available >= amount
        if success:
            over_max = f"The charge would take your balance over {MAX_BALANCE}."
            charged_wallet.balance = available - amount
            charged_wallet.save(update_fields=["balance"])
            merchant_wallet.current_balance = _credit_without_waiting(merchant_wallet, amount, over_max=over_max)
        operation = Operation.objects.create(
            kind=Operation.Kind.CHARGE,
            source=charged_wallet,
            target=merchant_wallet,
            amount=amount,
            summary=summary,
            success=success,
        )
        metrics.record_charge(amount=amount, success=success)
    # Outside the atomic block: the failed attempt is committed before the error is raised.
    if not operation.success:
        raise InsufficientFunds(operation)
    return operation
