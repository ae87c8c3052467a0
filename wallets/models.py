"""Wallets and the operation ledger. The money invariants are database constraints, not just code."""

from __future__ import annotations

import secrets
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce

from wallet_service.api.fields import MAX_AMOUNT
from wallet_service.db import DatabaseNow

# A balance may grow by many deposits, far past one amount, but it must fit its column.
MAX_BALANCE = Decimal("999999999999999999.99")


def new_wallet_token() -> str:
    """32 URL-safe characters carrying 192 random bits."""
    return secrets.token_urlsafe(24)


class WalletQuerySet(models.QuerySet):
    def with_current_balance(self) -> WalletQuerySet:
        """Annotate ``current_balance``: the settled ``balance`` plus the wallet's pending credits.

        One statement reads both, so the sum is exact: a fold moves credits into ``balance`` in one
        transaction, and a statement sees it entirely or not at all.
        """
        pending = (
            PendingCredit.objects.filter(wallet=models.OuterRef("pk"))
            .order_by()
            .values("wallet")
            .annotate(total=models.Sum("amount"))
            .values("total")
        )
        money = models.DecimalField(max_digits=20, decimal_places=2)
        return self.annotate(
            current_balance=models.ExpressionWrapper(
                models.F("balance")
                + Coalesce(models.Subquery(pending, output_field=money), models.Value(Decimal("0.00"))),
                output_field=money,
            )
        )


class Wallet(models.Model):
    """A balance identified by an unguessable token that never changes.

    The wallet's money is ``balance`` (settled) plus its PendingCredit rows: a merchant's wallet may
    receive credits that are not folded into ``balance`` yet (see wallets.services.wallet_charge).
    ``balance`` is only written by wallets.services, under the wallet's row lock, in the same
    transaction as the operation that explains the change; the database refuses a negative balance.
    Read the whole amount with ``Wallet.objects.with_current_balance()``.
    """

    token = models.CharField(max_length=64, unique=True, default=new_wallet_token, editable=False)
    # Indexed by wallet_owner_idx below, which also serves the owner's list in creation order.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="wallets", db_index=False
    )
    balance = models.DecimalField(max_digits=20, decimal_places=2, default=Decimal("0.00"))
    created_at = models.DateTimeField(db_default=DatabaseNow(), editable=False)

    objects = WalletQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(balance__gte=0), name="wallet_balance_not_negative"),
            models.CheckConstraint(condition=models.Q(balance__lte=MAX_BALANCE), name="wallet_balance_max"),
        ]
        indexes = [models.Index(fields=["owner", "id"], name="wallet_owner_idx")]

    def __str__(self) -> str:
        return self.token


class Operation(models.Model):
    """One entry of the append-only ledger: a deposit, a charge, or a failed charge attempt.

    A deposit has no source and always succeeds. A charge moves ``amount`` from ``source`` to
    ``target``; ``success=False`` records an attempt refused for insufficient funds, which moved
    nothing. Rows are never updated or deleted (a database trigger refuses it). ``created_at`` is
    the database's clock. The charged wallet is locked when it is taken, so for that wallet the
    order of (created_at, id) is the order in which its operations committed; a merchant's wallet
    is credited without its lock, so its operations may commit out of that order, and history walks
    rely on the first page's snapshot instead (wallets.selectors.operation_list, migration 0004).
    """

    class Kind(models.TextChoices):
        DEPOSIT = "deposit", "Deposit"
        CHARGE = "charge", "Charge"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    # Both are indexed by the history indexes below (no separate single-column indexes to maintain).
    source = models.ForeignKey(
        Wallet, on_delete=models.PROTECT, null=True, blank=True, related_name="outgoing_operations", db_index=False
    )
    target = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="incoming_operations", db_index=False)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    summary = models.CharField(max_length=255, blank=True, default="")
    success = models.BooleanField()
    created_at = models.DateTimeField(db_default=DatabaseNow(), editable=False)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="operation_amount_positive"),
            models.CheckConstraint(condition=models.Q(amount__lte=MAX_AMOUNT), name="operation_amount_max"),
            models.CheckConstraint(
                condition=(
                    models.Q(kind="deposit", source__isnull=True, success=True)
                    | (models.Q(kind="charge", source__isnull=False) & ~models.Q(source=models.F("target")))
                ),
                name="operation_kind_shape",
            ),
        ]
        indexes = [
            # The history of a wallet is the union of two keyset scans, newest first: the
            # operations it was charged by (source) and those it received (target).
            models.Index(
                fields=["source", "-created_at", "-id"],
                name="operation_source_history_idx",
                condition=models.Q(source__isnull=False),
            ),
            models.Index(fields=["target", "-created_at", "-id"], name="operation_target_history_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} -> {self.target_id}"


class PendingCredit(models.Model):
    """Money a successful charge moved into a merchant's wallet while another transaction held
    that wallet's lock. It belongs to the wallet from the charge's commit on, and is folded into
    ``Wallet.balance`` — deleted and added in one transaction, under the wallet's lock — by the next
    operation that locks the wallet. Only wallets that receive charges (companies') ever have any.
    """

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="pending_credits")
    amount = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="pending_credit_amount_positive"),
            models.CheckConstraint(condition=models.Q(amount__lte=MAX_AMOUNT), name="pending_credit_amount_max"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} -> {self.wallet_id}"
