"""Reads of wallets and the ledger, always scoped to the wallet's owner."""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet

from accounts.models import User
from wallets.errors import WalletNotFound
from wallets.models import Operation, Wallet

# Wallet tokens are URL-safe base64 (see models.new_wallet_token); nothing else can name a wallet.
WALLET_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class HistoryPosition:
    """A place in a wallet's history: the (created_at, id) of the last operation already seen."""

    created_at: datetime
    id: int


def wallet_list(*, owner: User) -> QuerySet[Wallet]:
    """The owner's wallets, oldest first."""
    return Wallet.objects.filter(owner=owner).order_by("id")


def wallet_get(*, owner: User, token: str) -> Wallet:
    """The owner's wallet with this token; WalletNotFound if there is none (or it is someone else's)."""
    if not WALLET_TOKEN_RE.fullmatch(token):
        raise WalletNotFound()
    wallet = Wallet.objects.filter(owner=owner, token=token).first()
    if wallet is None:
        raise WalletNotFound()
    return wallet


def _history_side(
    *,
    side: str,
    wallet: Wallet,
    after: HistoryPosition | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[Operation]:
    """Newest-first operations where ``wallet`` is the ``side`` (source or target), one index range scan."""
    filters = Q(**{side: wallet})
    if since is not None:
        filters &= Q(created_at__gte=since)
    if until is not None:
        filters &= Q(created_at__lt=until)
    if after is not None:
        # (created_at, id) < (after.created_at, after.id), written so that the index range starts at the cursor.
        filters &= Q(created_at__lte=after.created_at) & (Q(created_at__lt=after.created_at) | Q(id__lt=after.id))
    queryset = (
        Operation.objects.filter(filters)
        .select_related("source", "target")
        .only(
            "id",
            "kind",
            "amount",
            "summary",
            "success",
            "created_at",
            "source__token",
            "target__token",
        )
        .order_by("-created_at", "-id")
    )
    return list(queryset[:limit])


def operation_list(
    *,
    wallet: Wallet,
    after: HistoryPosition | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[Operation]:
    """Up to ``limit`` operations of ``wallet``, newest first, strictly after ``after`` in that order.

    ``since <= created_at < until`` when given. Two index range scans (the wallet as source and
    as target) of at most ``limit`` rows each, merged: the cost depends on ``limit``, not on how
    long the history is, and there is never a count or an offset scan. The caller must already
    have checked that the wallet is the user's (use ``wallet_get``).
    """
    sides = [
        _history_side(side=side, wallet=wallet, after=after, since=since, until=until, limit=limit)
        for side in ("source", "target")
    ]
    merged = heapq.merge(*sides, key=lambda operation: (operation.created_at, operation.id), reverse=True)
    return [operation for _, operation in zip(range(limit), merged, strict=False)]
