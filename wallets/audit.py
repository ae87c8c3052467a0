"""The ledger audit: do the balances agree with the operations that explain them?

Checked, all in SQL aggregates over one consistent snapshot, a batch of wallets at a time so
that memory stays bounded however long the ledger is:
- every wallet's balance (settled plus pending credits) equals its successful credits minus its
  successful debits;
- no balance is negative;
- the sum of all balances equals the sum of all successful deposits (charges only move money).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Count, DecimalField, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from wallets.models import Operation, Wallet

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class WalletDrift:
    token: str
    balance: Decimal
    ledger: Decimal

    @property
    def difference(self) -> Decimal:
        return self.balance - self.ledger


@dataclass
class AuditReport:
    wallets: int = 0
    operations: int = 0
    failed_operations: int = 0
    total_balance: Decimal = ZERO
    total_deposits: Decimal = ZERO
    # Counts only: the wallets themselves go to on_drift as they are found, so memory stays bounded.
    drifts: int = 0
    negative: int = 0

    @property
    def total_matches(self) -> bool:
        return self.total_balance == self.total_deposits

    @property
    def ok(self) -> bool:
        return self.total_matches and not self.drifts and not self.negative


def _successful_sum(side: str):
    """Sum of the successful operations with the outer wallet on ``side`` ("source" or "target")."""
    rows = (
        Operation.objects.filter(**{side: OuterRef("pk")}, success=True)
        .order_by()
        .values(side)
        .annotate(total=Sum("amount"))
        .values("total")
    )
    money = DecimalField(max_digits=20, decimal_places=2)
    return Coalesce(Subquery(rows, output_field=money), Value(ZERO), output_field=money)


def _wallet_batches(batch_size: int) -> Iterator[list[tuple]]:
    last_id = 0
    while True:
        batch = list(
            Wallet.objects.with_current_balance()
            .filter(pk__gt=last_id)
            .order_by("pk")
            .annotate(credits=_successful_sum("target"), debits=_successful_sum("source"))
            .values_list("pk", "token", "current_balance", "credits", "debits")[:batch_size]
        )
        if not batch:
            return
        yield batch
        last_id = batch[-1][0]


def ledger_audit(
    *,
    batch_size: int = 5_000,
    on_progress: Callable[[int, int], None] | None = None,
    on_drift: Callable[[WalletDrift], None] | None = None,
) -> AuditReport:
    """Audit every wallet against the ledger; ``on_progress(done, total)`` after each batch,
    ``on_drift(drift)`` for each wallet found wrong (as found, so nothing accumulates unseen)."""
    report = AuditReport()
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and outermost:
            # One snapshot for the whole audit: writes committing meanwhile cannot look like drift.
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        totals = Operation.objects.aggregate(
            operations=Count("pk"),
            failed=Count("pk", filter=Q(success=False)),
            deposits=Sum("amount", filter=Q(kind=Operation.Kind.DEPOSIT, success=True)),
        )
        report.operations, report.failed_operations = totals["operations"], totals["failed"]
        report.total_deposits = totals["deposits"] or ZERO
        total_wallets = Wallet.objects.count()
        for batch in _wallet_batches(batch_size):
            for _pk, token, balance, credits, debits in batch:
                report.wallets += 1
                report.total_balance += balance
                found = WalletDrift(token=token, balance=balance, ledger=credits - debits)
                report.drifts += bool(found.difference)
                report.negative += balance < 0
                if (found.difference or balance < 0) and on_drift:
                    on_drift(found)
            if on_progress:
                on_progress(report.wallets, total_wallets)
    return report
