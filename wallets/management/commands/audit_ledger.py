"""``manage.py audit_ledger``: check that balances agree with the ledger; exit 1 when they do not.

Read-only. It reads one REPEATABLE READ snapshot, so it can run beside live traffic.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from wallets.audit import WalletDrift, ledger_audit


class Command(BaseCommand):
    help = (
        "Check that every wallet's balance equals the sum of its successful operations, that no balance is "
        "negative, and that all balances add up to all successful deposits. Exits 1 and lists the wallets on drift."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=5_000, help="wallets aggregated per query")
        progress = parser.add_mutually_exclusive_group()
        progress.add_argument("--progress", dest="progress", action="store_true", default=None)
        progress.add_argument("--no-progress", dest="progress", action="store_false")

    def handle(self, *args, batch_size: int, progress: bool | None, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        if progress is None:  # by default, only when a person is watching
            progress = self.stderr.isatty()
        started = time.monotonic()

        def show_progress(done: int, total: int) -> None:
            self.stderr.write(f"\raudited {done:,}/{total:,} wallets ({done * 100 // max(total, 1)}%)", ending="")

        def show_drift(drift: WalletDrift) -> None:
            if progress:
                self.stderr.write("")  # leave the progress line
            self.stdout.write(
                f"DRIFT {drift.token} balance={drift.balance} ledger={drift.ledger} difference={drift.difference}"
            )

        report = ledger_audit(
            batch_size=batch_size, on_progress=show_progress if progress else None, on_drift=show_drift
        )
        if progress:
            self.stderr.write("")
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"Audited {report.wallets:,} wallets and {report.operations:,} operations "
            f"({report.failed_operations:,} failed charges and holds) in {elapsed:.2f} s.\n"
            f"Sum of balances:             {report.total_balance}\n"
            f"Sum of successful deposits:  {report.total_deposits}\n"
            f"Wallets off their ledger:    {report.drifts}\n"
            f"Wallets below zero:          {report.negative}\n"
            f"Available below zero:        {report.negative_available}\n"
            f"Operations over-refunded:    {report.over_refunded}\n"
            f"Holds off their captures:    {report.capture_mismatches}"
        )
        if not report.ok:
            problems = []
            if report.drifts:
                problems.append(f"{report.drifts} wallets differ from their ledger")
            if report.negative:
                problems.append(f"{report.negative} wallets are below zero")
            if report.negative_available:
                problems.append(f"{report.negative_available} wallets hold more than their balance")
            if report.over_refunded:
                problems.append(f"{report.over_refunded} operations are refunded beyond their amount")
            if report.capture_mismatches:
                problems.append(f"{report.capture_mismatches} holds differ from the sum of their captures")
            if not report.total_matches:
                problems.append(f"balances add up to {report.total_balance - report.total_deposits} more than deposits")
            raise CommandError("Ledger audit FAILED: " + "; ".join(problems) + ".")
        self.stdout.write(self.style.SUCCESS("Ledger audit passed."))
