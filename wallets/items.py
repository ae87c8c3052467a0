"""An operation as one reader sees it: the single place where token secrecy is decided.

A wallet token is a credential (any company can charge whoever's token it knows), so no response,
feed or webhook may hand it to someone who did not already have it. Every reader of an operation —
the history, the failed charge's problem, and every later feed — renders it through
``operation_item``; nothing else turns an operation into JSON.

The rule: a token is shown in full to the owner of its wallet, and to the company whose operation
it is (the owner of the merchant's wallet: it sent the other token itself). Every other token is
masked to ``"…"`` and its last four characters. Each item between two parties names the other one
in ``counterparty``: a company by its name, a client by its kind only (no personal data).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal, NamedTuple, NotRequired, TypedDict

from wallet_service.api.fields import format_money
from wallet_service.api.shapes import Doc, Instant, Money

MASK = "…"
# The side that holds the merchant's wallet, by operation kind: the company whose operation it is.
MERCHANT_SIDE = {"charge": "target", "hold": "target", "capture": "target", "refund": "source"}


class OperationRow(NamedTuple):
    """One operation with what its readers may need: both wallets' tokens and owners, and the name
    of the company on each side (None for a client's wallet or a deposit's missing source)."""

    id: int
    kind: str
    amount: Decimal
    summary: str
    success: bool
    created_at: datetime
    source_token: str | None
    target_token: str
    source_owner_id: int | None
    target_owner_id: int
    source_company: str | None
    target_company: str | None
    hold_id: str | None  # the hold's public id, for a hold or capture
    refund_of_id: int | None


class HoldRow(NamedTuple):
    """A hold with what its readers may need: both wallets' tokens and owners."""

    public_id: str
    wallet_token: str
    wallet_owner_id: int
    merchant_wallet_token: str
    merchant_owner_id: int
    amount: Decimal
    captured: Decimal
    status: str
    summary: str
    created_at: datetime
    expires_at: datetime
    expired: bool  # by the database's clock: a pending hold past expires_at reads as expired


TOKEN_SECRECY = (
    " Shown in full only to its owner, or to the company whose operation it is; otherwise masked: `…` and its "
    "last four characters (a wallet token is a credential)."
)


class Counterparty(TypedDict):
    kind: Literal["company", "client"]
    name: NotRequired[Annotated[str, Doc("The company's name; absent for a client.")]]


class OperationOutput(TypedDict):
    """A history item, an event's ``data`` for an operation: rendered by ``operation_item``."""

    id: Annotated[int, Doc("What a refund names.")]
    type: Literal["deposit", "charge", "hold", "capture", "refund"]
    summary: str
    source__token: Annotated[str | None, Doc("The charged wallet; null for a deposit." + TOKEN_SECRECY)]
    target__token: Annotated[str, Doc("The wallet that received (or would have received) the money." + TOKEN_SECRECY)]
    counterparty: Annotated[
        Counterparty | None,
        Doc("The other party of a charge (a company by name, a client by kind); null for a deposit."),
    ]
    amount: Annotated[Money, Doc("For a hold, the amount reserved: a hold item moves no money.")]
    success: Annotated[bool, Doc("False for a charge or hold refused for insufficient funds.")]
    hold: NotRequired[Annotated[str | None, Doc("Hold and capture items: the hold's id (null for a refused hold).")]]
    refund_of: NotRequired[Annotated[int, Doc("Refund items: the refunded operation's id.")]]
    date: Annotated[Instant, Doc("When the operation committed, UTC.")]


class HoldOutput(TypedDict):
    """The hold body, an event's ``data`` for a hold: rendered by ``hold_item``."""

    hold: Annotated[str, Doc("The hold's id: opaque and URL-safe.")]
    wallet: Annotated[str, Doc("The held wallet.")]
    merchant_wallet: Annotated[str, Doc("The company's wallet, which captures receive.")]
    amount: Money
    captured: Money
    remaining: Annotated[Money, Doc("What the hold still reserves: `amount - captured` while pending, else 0.00.")]
    status: Literal["pending", "captured", "voided", "expired"]
    summary: str
    created: Instant
    expires_at: Annotated[
        Instant, Doc("From this instant a pending hold is expired: it reserves nothing and cannot be captured.")
    ]


def mask_token(token: str) -> str:
    return MASK + token[-4:]


def format_date(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def operation_item(row: OperationRow, *, reader_id: int) -> OperationOutput:
    """``row`` as the user ``reader_id`` may see it (one of the operation's two owners)."""
    side = MERCHANT_SIDE.get(row.kind)
    merchant_owner = getattr(row, f"{side}_owner_id") if side else None
    sees_all = merchant_owner == reader_id

    def token(value: str | None, owner_id: int | None) -> str | None:
        if value is None or sees_all or owner_id == reader_id:
            return value
        return mask_token(value)

    item: OperationOutput = {
        "id": row.id,
        "type": row.kind,
        "summary": row.summary,
        "source__token": token(row.source_token, row.source_owner_id),
        "target__token": token(row.target_token, row.target_owner_id),
        "amount": format_money(row.amount),
        "success": row.success,
        "date": format_date(row.created_at),
    }
    if row.kind in ("hold", "capture"):
        item["hold"] = row.hold_id
    elif row.kind == "refund":
        item["refund_of"] = row.refund_of_id
    if side is None:
        item["counterparty"] = None  # a deposit has no other party
    else:
        # The other party is the side the reader does not own (a company never charges itself).
        other_is_source = row.source_owner_id != reader_id
        company = row.source_company if other_is_source else row.target_company
        item["counterparty"] = {"kind": "company", "name": company} if company is not None else {"kind": "client"}
    return item


def hold_item(row: HoldRow, *, reader_id: int) -> HoldOutput:
    """The hold body as ``reader_id`` may see it: the company that placed it sees both wallets (the
    held one is a token it sent); the held wallet's owner sees the company's wallet masked."""
    status = "expired" if row.status == "pending" and row.expired else row.status
    remaining = row.amount - row.captured if status == "pending" else Decimal("0.00")
    merchant_token = row.merchant_wallet_token
    if reader_id != row.merchant_owner_id:
        merchant_token = mask_token(merchant_token)
    return {
        "hold": row.public_id,
        "wallet": row.wallet_token
        if reader_id in (row.wallet_owner_id, row.merchant_owner_id)
        else mask_token(row.wallet_token),
        "merchant_wallet": merchant_token,
        "amount": format_money(row.amount),
        "captured": format_money(row.captured),
        "remaining": format_money(remaining),
        "status": status,
        "summary": row.summary,
        "created": format_date(row.created_at),
        "expires_at": format_date(row.expires_at),
    }
