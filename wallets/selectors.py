"""Reads of wallets and the ledger, always scoped to the wallet's owner."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from django.db import connection

from accounts.models import User
from wallets.errors import WalletNotFound
from wallets.models import Operation, PendingCredit, Wallet

CENT = Decimal("0.01")
# Wallet tokens are URL-safe base64 (see models.new_wallet_token); nothing else can name a wallet.
WALLET_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class HistoryPosition:
    """A place in a wallet's history: the (created_at, id) of the last operation already seen, and
    (PostgreSQL) the snapshot of the walk's first page, which decides what the walk may show."""

    created_at: datetime
    id: int
    snapshot: str | None = None


class OperationRow(NamedTuple):
    """One operation of a history page, with the tokens of its wallets (a plain row: a page of
    model instances cost ~2 ms of CPU more per 100 operations, profiled)."""

    id: int
    kind: str
    amount: Decimal
    summary: str
    success: bool
    created_at: datetime
    source_token: str | None
    target_token: str


def _owned_wallets(condition: str, params: list) -> list[Wallet]:
    """The owner's wallets with ``current_balance``: the settled balance plus the pending credits,
    read in one statement as ``Wallet.objects.with_current_balance()`` does, but written by hand: the
    ORM builds that subquery for ~1 ms of CPU per request, this costs ~0.2 ms (docs/PERFORMANCE.md).
    """
    wallets, pending = Wallet._meta.db_table, PendingCredit._meta.db_table
    sql = (
        f"SELECT w.id, w.token, w.owner_id, w.balance, w.created_at, "
        f"(SELECT SUM(p.amount) FROM {pending} p WHERE p.wallet_id = w.id) AS pending_total "
        f"FROM {wallets} w WHERE w.owner_id = %s {condition}"
    )
    found = list(Wallet.objects.raw(sql, params))
    for wallet in found:
        # PostgreSQL returns numeric as Decimal; SQLite may return a float or an int.
        pending_total = wallet.__dict__.pop("pending_total")
        wallet.current_balance = wallet.balance + (
            Decimal(str(pending_total)).quantize(CENT) if pending_total is not None else Decimal("0.00")
        )
    return found


def wallet_list(*, owner: User) -> list[Wallet]:
    """The owner's wallets, oldest first, each with ``current_balance``."""
    return _owned_wallets("ORDER BY w.id", [owner.pk])


def wallet_get(*, owner: User, token: str) -> Wallet:
    """The owner's wallet with this token, with ``current_balance``; WalletNotFound if there is none
    (or it is someone else's)."""
    if not WALLET_TOKEN_RE.fullmatch(token):
        raise WalletNotFound()
    found = _owned_wallets("AND w.token = %s", [owner.pk, token])
    if not found:
        raise WalletNotFound()
    return found[0]


def _keyset_conditions(
    *, after: HistoryPosition | None, since: datetime | None, until: datetime | None
) -> tuple[str, list]:
    """SQL conditions (each starting with AND) and their parameters, for one side of the history."""
    adapt = connection.ops.adapt_datetimefield_value
    sql, params = [], []
    if since is not None:
        sql.append("AND created_at >= %s")
        params.append(adapt(since))
    if until is not None:
        sql.append("AND created_at < %s")
        params.append(adapt(until))
    if after is not None:
        # (created_at, id) < (after.created_at, after.id), written so that the index range starts at the cursor.
        sql.append("AND created_at <= %s AND (created_at < %s OR id < %s)")
        params.extend([adapt(after.created_at), adapt(after.created_at), after.id])
    return " ".join(sql), params


class HistoryPage(NamedTuple):
    operations: list[OperationRow]
    # PostgreSQL: the snapshot the first page of a walk was read in; later pages show only what it saw.
    snapshot: str | None


def operation_list(
    *,
    wallet: Wallet,
    after: HistoryPosition | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> HistoryPage:
    """Up to ``limit`` operations of ``wallet``, newest first, strictly after ``after`` in that order.

    ``since <= created_at < until`` when given. Each row carries ``source_token`` and
    ``target_token``. The page is ONE statement, so it is one snapshot of the ledger: read as
    two, a charge and then a deposit committing between them could show the deposit without the
    charge, and the charge would then be skipped by the rest of the walk. Inside it, two index
    range scans (the wallet as source, and as target) of at most ``limit`` rows each are merged:
    the cost depends on ``limit``, not on the length of the history; no COUNT, no OFFSET. The
    caller must already have checked that the wallet is the user's (``wallet_get``).

    On PostgreSQL a walk is exact whatever the commit order: the first page returns its snapshot,
    and a page after ``after`` shows only operations visible in ``after.snapshot``. (A merchant's
    wallet is credited without its row lock, so an operation with an older (date, id) can commit
    after a newer one; without the snapshot it would appear in the middle of a walk that began
    before it existed.) SQLite runs one writer at a time, so there commit order is (date, id) order.
    """
    conditions, params = _keyset_conditions(after=after, since=since, until=until)
    postgres = connection.vendor == "postgresql"
    snapshot = after.snapshot if after is not None else None
    if postgres and snapshot is not None:
        # A transaction sees its own writes (only tests read history inside a writing transaction).
        conditions += " AND (pg_visible_in_snapshot(xid, %s::pg_snapshot) OR xid = pg_current_xact_id_if_assigned())"
        params = [*params, snapshot]
    read_snapshot = postgres and snapshot is None
    operations, wallets = Operation._meta.db_table, Wallet._meta.db_table
    side = (
        f"SELECT id FROM (SELECT id, created_at FROM {operations} WHERE {{column}} = %s {conditions} "
        f"ORDER BY created_at DESC, id DESC LIMIT %s) AS {{alias}}"
    )
    sql = f"""
        SELECT o.id, o.kind, o.amount, o.summary, o.success, o.created_at, source.token, target.token
               {", pg_current_snapshot()::text" if read_snapshot else ""}
        FROM ({side.format(column="source_id", alias="by_source")}
              UNION ALL
              {side.format(column="target_id", alias="by_target")}) AS page
        JOIN {operations} AS o ON o.id = page.id
        LEFT JOIN {wallets} AS source ON source.id = o.source_id
        JOIN {wallets} AS target ON target.id = o.target_id
        ORDER BY o.created_at DESC, o.id DESC
        LIMIT %s
    """
    side_params = [*params, limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, [wallet.pk, *side_params, wallet.pk, *side_params, limit])
        rows = cursor.fetchall()
    if read_snapshot and rows:
        snapshot = rows[0][-1]
        rows = [row[:-1] for row in rows]
    return HistoryPage([OperationRow(*row) for row in rows], snapshot)
