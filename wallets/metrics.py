"""Business counters exported at /metrics: deposits, charges by outcome, and the money they moved.

The services call ``record_*`` inside their transaction; the counters move only when that
transaction commits (``transaction.on_commit``), so a deposit or charge that is rolled back is
never counted, and a failed charge is counted once its record is committed. Amounts are exported
as floats: fine for dashboards and rates, never for accounting (the ledger is the record).
prometheus_client's multiprocess mode adds up every server worker's counters (wallet_service/serve.py).
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from prometheus_client import Counter

SUCCEEDED = "succeeded"
INSUFFICIENT_FUNDS = "insufficient_funds"

deposits = Counter("wallet_deposits", "Deposits committed.")
deposited_amount = Counter("wallet_deposited_amount", "Money deposited into wallets, in currency units.")
charges = Counter("wallet_charges", "Charges committed, by outcome (a failed charge is recorded too).", ["outcome"])
charged_amount = Counter("wallet_charged_amount", "Money moved by successful charges, in currency units.")

# Every series exists from the start (at 0), so that rate() and alerts see the first event.
for _outcome in (SUCCEEDED, INSUFFICIENT_FUNDS):
    charges.labels(outcome=_outcome)


def record_deposit(*, amount: Decimal) -> None:
    """Count a deposit of ``amount`` when the current transaction commits."""

    def count() -> None:
        deposits.inc()
        deposited_amount.inc(float(amount))

    # robust: a metrics failure after the money has moved must never turn the answer into a 500.
    transaction.on_commit(count, robust=True)


def record_charge(*, amount: Decimal, success: bool) -> None:
    """Count a charge (and, when it succeeded, the money it moved) when the current transaction commits."""

    def count() -> None:
        if success:
            charges.labels(outcome=SUCCEEDED).inc()
            charged_amount.inc(float(amount))
        else:
            charges.labels(outcome=INSUFFICIENT_FUNDS).inc()

    # robust: a metrics failure after the money has moved must never turn the answer into a 500.
    transaction.on_commit(count, robust=True)


def record_charges(*, succeeded: int, failed: int, amount: Decimal) -> None:
    """Count a bulk charge's items (and the money its successful ones moved) when the transaction commits."""

    def count() -> None:
        charges.labels(outcome=SUCCEEDED).inc(succeeded)
        charges.labels(outcome=INSUFFICIENT_FUNDS).inc(failed)
        charged_amount.inc(float(amount))

    transaction.on_commit(count, robust=True)
