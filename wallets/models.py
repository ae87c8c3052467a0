"""Wallets and the operation ledger. The money invariants are database constraints, not just code."""

from __future__ import annotations

import secrets
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce

from wallet_service.db import CurrentTransactionId, DatabaseNow, TransactionIdField
from wallet_service.money import MAX_AMOUNT, MAX_BALANCE


def new_wallet_token() -> str:
    """32 URL-safe characters carrying 192 random bits."""
    return secrets.token_urlsafe(24)


def new_hold_id() -> str:
    """An opaque, unguessable, URL-safe hold id: ``hold_`` and 128 random bits."""
    return "hold_" + secrets.token_urlsafe(16)


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


class Hold(models.Model):
    """Money of ``wallet`` reserved by the company owning ``merchant_wallet``, to capture later.

    While ``pending`` and before ``expires_at`` it reserves ``amount - captured`` of the wallet: the
    wallet's ``held`` is the sum of that over its live holds, computed from this table whenever it is
    read (wallets.sql.HELD), so an expired hold stops counting at ``expires_at`` whether or not the
    expiry job has marked it. Rows are never deleted; ``status`` only moves forward (pending to
    captured, voided or expired), ``captured`` only grows and never passes ``amount``: constraints and
    a trigger (migration 0005) refuse anything else. Every change to a hold also rewrites its held
    wallet's row, under that row's lock (wallets.services), which is how a reader of the wallet knows
    whether its view of the holds is current.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        CAPTURED = "captured", "Captured"
        VOIDED = "voided", "Voided"
        EXPIRED = "expired", "Expired"

    public_id = models.CharField(max_length=40, unique=True, default=new_hold_id, editable=False)
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="holds", db_index=False)
    merchant_wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="placed_holds")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    captured = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0.00"))
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    summary = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(db_default=DatabaseNow(), editable=False)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="hold_amount_positive"),
            models.CheckConstraint(condition=models.Q(amount__lte=MAX_AMOUNT), name="hold_amount_max"),
            models.CheckConstraint(
                condition=models.Q(captured__gte=0, captured__lte=models.F("amount")),
                name="hold_captured_within_amount",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "captured", "voided", "expired"]), name="hold_status_valid"
            ),
            models.CheckConstraint(condition=~models.Q(wallet=models.F("merchant_wallet")), name="hold_not_own_wallet"),
        ]
        indexes = [
            # A wallet's live holds (its held amount), and the expiry job's scan.
            models.Index(
                fields=["wallet", "expires_at"], name="hold_pending_wallet_idx", condition=models.Q(status="pending")
            ),
            models.Index(fields=["expires_at"], name="hold_pending_expiry_idx", condition=models.Q(status="pending")),
        ]

    def __str__(self) -> str:
        return self.public_id


class Operation(models.Model):
    """One entry of the append-only ledger: a deposit, a charge, a hold, a capture or a refund.

    A deposit has no source and always succeeds. A charge moves ``amount`` from ``source`` to
    ``target``; ``success=False`` records an attempt refused for insufficient funds, which moved
    nothing. A hold records a reservation of ``amount`` in ``source`` for ``target``'s company: it
    moves no money (``success=False``: refused for insufficient funds, with no hold). A capture moves
    money of ``hold`` from ``source`` to ``target``. A refund moves money back from the merchant's
    wallet (``source``) to the wallet the charge ``refund_of`` took it from (``target``).
    Rows are never updated or deleted (a database trigger refuses it). ``created_at`` is the
    database's clock. The charged wallet is locked when it is taken, so for that wallet the
    order of (created_at, id) is the order in which its operations committed; a merchant's wallet
    is credited without its lock, so its operations may commit out of that order, and history walks
    rely on the first page's snapshot instead (wallets.selectors.operation_list, migration 0004).
    """

    class Kind(models.TextChoices):
        DEPOSIT = "deposit", "Deposit"
        CHARGE = "charge", "Charge"
        HOLD = "hold", "Hold"
        CAPTURE = "capture", "Capture"
        REFUND = "refund", "Refund"

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
    # Indexed only where set (operation_hold_idx): most operations have no hold, and a full index took an
    # entry per operation for nothing.
    hold = models.ForeignKey(
        Hold, on_delete=models.PROTECT, null=True, blank=True, related_name="operations", db_index=False
    )
    refund_of = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="refunds", db_index=False
    )
    # The writing transaction: a history walk shows only what its first page's snapshot could see.
    xid = TransactionIdField(db_default=CurrentTransactionId(), editable=False)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="operation_amount_positive"),
            models.CheckConstraint(condition=models.Q(amount__lte=MAX_AMOUNT), name="operation_amount_max"),
            models.CheckConstraint(
                condition=(
                    models.Q(kind="deposit", source__isnull=True, success=True, hold__isnull=True)
                    | (
                        models.Q(kind="charge", source__isnull=False, hold__isnull=True)
                        & ~models.Q(source=models.F("target"))
                    )
                    | (
                        models.Q(kind="hold", source__isnull=False)
                        & (models.Q(success=True, hold__isnull=False) | models.Q(success=False, hold__isnull=True))
                        & ~models.Q(source=models.F("target"))
                    )
                    | models.Q(kind="capture", source__isnull=False, success=True, hold__isnull=False)
                    | models.Q(kind="refund", source__isnull=False, success=True, hold__isnull=True)
                )
                & (
                    models.Q(kind="refund", refund_of__isnull=False)
                    | ~models.Q(kind="refund") & models.Q(refund_of__isnull=True)
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
            # What has been refunded of a charge.
            models.Index(
                fields=["refund_of"], name="operation_refund_of_idx", condition=models.Q(refund_of__isnull=False)
            ),
            # A hold's captures (and the foreign key's checks when a hold is deleted).
            models.Index(fields=["hold"], name="operation_hold_idx", condition=models.Q(hold__isnull=False)),
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
