"""Reads of wallets and the ledger, always scoped to the wallet's owner."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from django.db import connections

from accounts.models import Company, User
from wallet_service import db_routing
from wallet_service.api.fields import PUBLIC_ID_RE
from wallets import sql
from wallets.errors import HoldNotFound, WalletNotFound
from wallets.items import HoldRow, OperationRow
from wallets.models import Wallet

# Wallet tokens and hold ids are URL-safe base64 (models.new_wallet_token, models.new_hold_id); anything
# else (a NUL byte included) is not found.
WALLET_TOKEN_RE = HOLD_ID_RE = PUBLIC_ID_RE


def check_hold_id(hold_id: str) -> None:
    """HoldNotFound for what cannot be a hold id, before it reaches the database."""
    if not HOLD_ID_RE.fullmatch(hold_id):
        raise HoldNotFound()


@dataclass(frozen=True)
class HistoryPosition:
    """A place in a wallet's history: the (created_at, id) of the last operation already seen, and
    the snapshot of the walk's first page, which decides what the walk may show."""

    created_at: datetime
    id: int
    snapshot: str | None = None


def _owned_wallets(condition: str, params: list, using: str) -> list[Wallet]:
    """The owner's wallets, each with ``current_balance`` (the settled balance plus the pending
    credits) and ``held``, read in one statement (wallets.sql.OWNED_WALLETS)."""
    found = list(Wallet.objects.db_manager(using).raw(f"{sql.OWNED_WALLETS} {condition}", params))
    for wallet in found:
        wallet.current_balance, wallet.held = wallet.__dict__.pop("money"), wallet.__dict__.pop("held_amount")
    return found


@db_routing.replica_read()
def wallet_list(*, owner: User, after_id: int | None = None, limit: int = 100, using: str) -> list[Wallet]:
    """Up to ``limit`` of the owner's wallets, oldest first, after the wallet ``after_id`` when given,
    each with ``current_balance``. A keyset range of the (owner, id) index: no OFFSET."""
    if after_id is None:
        return _owned_wallets("ORDER BY w.id LIMIT %s", [owner.pk, limit], using)
    return _owned_wallets("AND w.id > %s ORDER BY w.id LIMIT %s", [owner.pk, after_id, limit], using)


@db_routing.replica_read()
def wallet_get(*, owner: User, token: str, using: str) -> Wallet:
    """The owner's wallet with this token, with ``current_balance``; WalletNotFound if there is none
    (or it is someone else's)."""
    if not WALLET_TOKEN_RE.fullmatch(token):
        raise WalletNotFound()
    found = _owned_wallets("AND w.token = %s", [owner.pk, token], using)
    if not found:
        raise WalletNotFound()
    return found[0]


class HistoryPage(NamedTuple):
    operations: list[OperationRow]
    # The snapshot the first page of a walk was read in; later pages show only what it saw.
    snapshot: str | None


@db_routing.replica_read(db_routing.history_requirement)
def operation_list(
    *,
    owner: User,
    wallet_token: str,
    after: HistoryPosition | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    using: str,
) -> HistoryPage:
    """Up to ``limit`` operations of ``owner``'s wallet ``wallet_token``, newest first, strictly after
    ``after`` in that order; WalletNotFound when the wallet is not the owner's (or does not exist).

    ``since <= created_at < until`` when given. Each row carries both wallets' tokens and owners and
    the companies' names, for ``wallets.items.operation_item``. The page is ONE statement, so it is
    one snapshot of the ledger: read as two, a charge and then a deposit committing between them
    could show the deposit without the charge, and the charge would then be skipped by the rest of
    the walk. The same statement checks ownership (the wallet is found by token AND owner), so a
    page costs one round trip; only an empty page asks again, to tell "not yours" from "no
    operations". Inside it, two index range scans (the wallet as source, and as target) of at most
    ``limit`` rows each are merged: the cost depends on ``limit``, not on the length of the history;
    no COUNT, no OFFSET.

    A walk is exact whatever the commit order: the first page returns its snapshot, and a page after
    ``after`` shows only operations visible in ``after.snapshot``. (A merchant's wallet is credited
    without its row lock, so an operation with an older (date, id) can commit after a newer one;
    without the snapshot it would appear in the middle of a walk that began before it existed.)
    """
    if not WALLET_TOKEN_RE.fullmatch(wallet_token):
        raise WalletNotFound()
    snapshot = db_routing.split_snapshot(after.snapshot)[0] if after is not None and after.snapshot else None
    read_snapshot = snapshot is None
    wallets, companies, holds = sql.WALLETS, Company._meta.db_table, sql.HOLDS
    # Each side is one index range of ``limit`` rows in the index's order, whatever the statistics say
    # (the function wallet_history_side, migration 0007); only the 2 x ``limit`` rows of both are sorted.
    side = "SELECT * FROM wallet_history_side((SELECT id FROM owned), {as_source}, %s, %s, %s, %s, %s::pg_snapshot, %s)"
    statement = f"""
        WITH owned AS (SELECT id FROM {wallets} WHERE token = %s AND owner_id = %s)
        SELECT o.id, o.kind, o.amount, o.summary, o.success, o.created_at, source.token, target.token,
               source.owner_id, target.owner_id, source_company.name, target_company.name,
               hold.public_id, o.refund_of_id
               {", " + db_routing.SNAPSHOT_SQL if read_snapshot else ""}
        FROM ({side.format(as_source="TRUE")} UNION ALL {side.format(as_source="FALSE")}) AS o
        LEFT JOIN {wallets} AS source ON source.id = o.source_id
        JOIN {wallets} AS target ON target.id = o.target_id
        LEFT JOIN {companies} AS source_company ON source_company.user_id = source.owner_id
        LEFT JOIN {companies} AS target_company ON target_company.user_id = target.owner_id
        LEFT JOIN {holds} AS hold ON hold.id = o.hold_id
        ORDER BY o.created_at DESC, o.id DESC
        LIMIT %s
    """
    side_params = [
        since,
        until,
        after.created_at if after is not None else None,
        after.id if after is not None else None,
        snapshot,
        limit,
    ]
    with connections[using].cursor() as cursor:
        cursor.execute(statement, [wallet_token, owner.pk, *side_params, *side_params, limit])
        rows = cursor.fetchall()
        if not rows:
            cursor.execute(f"SELECT 1 FROM {wallets} WHERE token = %s AND owner_id = %s", [wallet_token, owner.pk])
            if cursor.fetchone() is None:
                raise WalletNotFound()
    if read_snapshot and rows:
        snapshot = rows[0][-1]
        rows = [row[:-1] for row in rows]
    return HistoryPage([OperationRow(*row) for row in rows], snapshot)


@db_routing.replica_read()
def hold_get(*, merchant: User, hold_id: str, using: str) -> HoldRow:
    """``merchant``'s hold ``hold_id`` with both wallets' tokens and owners, and whether it has
    expired by the database's clock (a pending hold past ``expires_at`` is expired whether or not
    the expiry job has run); HoldNotFound for a hold placed by anyone else."""
    check_hold_id(hold_id)
    with connections[using].cursor() as cursor:
        cursor.execute(sql.HOLD_ROW + " WHERE h.public_id = %s AND m.owner_id = %s", [hold_id, merchant.pk])
        row = cursor.fetchone()
    if row is None:
        raise HoldNotFound()
    return HoldRow(*row)
