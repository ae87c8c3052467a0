"""Every write to wallets and the ledger. Each function owns its transaction.

Locking discipline:
- a wallet row is locked (``SELECT ... FOR NO KEY UPDATE``) before its money is read for a
  decision or debited, and stays locked until the operation that explains the change commits;
- money is checked after the lock, never before, and only against ``available``: the balance
  (plus pending credits) minus what live holds reserve (wallets.sql);
- a wallet's money is its ``balance`` plus its pending credits; whoever holds the lock folds the
  pending credits into the balance (delete and add, one statement), so the sum never changes;
- every change to a hold rewrites its wallet's row under that row's lock, so a reader that waited
  for the lock knows whether its snapshot of the holds is current (wallets.sql.LOCK_FOR_DEBIT);
- a transaction waits for one wallet lock at most, after at most one hold lock: wallets that
  receive money (a charge's or capture's merchant, a refund's customer) are credited without
  waiting, and nobody holding a wallet lock waits for a hold; so no two operations can deadlock.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models.functions import Now

from accounts.models import User
from events.models import new_event_id
from events.services import events_write
from wallet_service.api.errors import ServiceError
from wallet_service.conflicts import retried_on_conflict
from wallet_service.money import MAX_BALANCE
from wallets import metrics, sql
from wallets.errors import (
    AmountAboveRefundable,
    AmountAboveRemaining,
    BalanceOverflow,
    HoldNotFound,
    HoldNotPending,
    InsufficientFunds,
    MerchantWalletMissing,
    NotRefundable,
    OperationNotFound,
    SameWallet,
    TooManyRefusedAttempts,
    WalletLimitReached,
    WalletNotFound,
)
from wallets.items import HoldRow, OperationRow, hold_item, operation_item
from wallets.models import Hold, Operation, Wallet


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
        wallet.current_balance, wallet.held = wallet.balance, Decimal("0.00")
        return wallet


class Money(NamedTuple):
    """A wallet's money as a decision needs it, read under its lock."""

    balance: Decimal  # settled balance plus pending credits
    held: Decimal

    @property
    def available(self) -> Decimal:
        return self.balance - self.held


def _fold_and_add(wallet_id: int, amount: Decimal, *, over_max: str) -> Money:
    """Under the wallet's row lock: fold its pending credits into ``balance``, add ``amount`` (negative
    to debit, zero to fold only or to mark that its holds changed). Returns its money after that."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.FOLD_AND_ADD, {"wallet": wallet_id, "amount": amount})
            return Money(*cursor.fetchone())
    except (IntegrityError, DataError) as error:  # numeric overflow or the balance CHECK constraints
        raise BalanceOverflow(over_max) from error


def _credit_without_waiting(wallet_id: int, amount: Decimal, *, over_max: str) -> Money:
    """Add ``amount`` to the wallet without waiting for its row lock; returns its money after.

    A merchant's wallet receives every charge, and it is never checked for funds, so no charge
    waits for it: when the lock is free, the credit (and every pending credit) goes into the
    balance; when another transaction holds it, the credit is left as a PendingCredit row in this
    transaction, for the next holder of the lock to fold. Either way it commits with the operation.
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.CREDIT, {"wallet": wallet_id, "amount": amount})
            money = Money(*cursor.fetchone())
    except (IntegrityError, DataError) as error:  # past the maximum balance (sql.money_after_credit, the CHECKs)
        raise BalanceOverflow(over_max) from error
    return money


def _set_balance(wallet_id: int, balance: Decimal) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql.SET_BALANCE, {"wallet": wallet_id, "balance": balance})


class Party(NamedTuple):
    """One side of an operation, as its events need it."""

    token: str
    # None: the charged wallet's owner, whoever the statement that writes the events finds (CHARGE_AT_ONCE);
    # rendered as that reader (wallets.items compares owners only with each other), its event's owner_id null
    owner_id: int | None
    company: str | None  # the owner's company name; None for a client


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _record(
    kind: str,
    *,
    source: Party | None,
    source_id: int | None,
    target: Party,
    target_id: int,
    amount: Decimal,
    summary: str,
    success: bool,
    event_type: str,
    hold: tuple[int, str] | None = None,
    refund_of_id: int | None = None,
) -> Operation:
    """Insert an operation and its ``event_type`` event for each owner of its wallets, in one
    statement (wallets.sql.INSERT_OPERATION). Each event's ``data`` is the operation as that owner's
    history shows it (wallets.items.operation_item: the other party's token masked); the id and
    date, known only once inserted, are merged in by the statement. ``hold`` is (id, public id)."""
    params = {
        "kind": kind,
        "source": source_id,
        "target": target_id,
        "amount": amount,
        "summary": summary,
        "success": success,
        "hold": hold[0] if hold else None,
        "refund_of": refund_of_id,
        "events": _events_json(
            kind,
            source=source,
            target=target,
            amount=amount,
            summary=summary,
            success=success,
            event_type=event_type,
            hold=hold,
            refund_of_id=refund_of_id,
        ),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql.INSERT_OPERATION, params)
        operation_id, created_at = cursor.fetchone()
    return Operation(
        id=operation_id,
        kind=kind,
        source_id=source_id,
        target_id=target_id,
        amount=amount,
        summary=summary,
        success=success,
        created_at=created_at,
        hold_id=hold[0] if hold else None,
        refund_of_id=refund_of_id,
    )


def _events_json(
    kind: str,
    *,
    source: Party | None,
    target: Party,
    amount: Decimal,
    summary: str,
    success: bool,
    event_type: str,
    hold: tuple[int, str] | None = None,
    refund_of_id: int | None = None,
) -> str:
    """The ``events`` parameter of INSERT_OPERATION and CHARGE_WRITES: an ``event_type`` event for each owner
    of the operation's wallets, as that owner's history shows the operation (without its id and date)."""
    row = OperationRow(
        0,  # placeholder: the statement writes the id and date
        kind,
        amount,
        summary,
        success,
        EPOCH,
        source.token if source else None,
        target.token,
        source.owner_id if source else None,
        target.owner_id,
        source.company if source else None,
        target.company,
        hold[1] if hold else None,
        refund_of_id,
    )
    owners = dict.fromkeys(party.owner_id for party in (source, target) if party is not None)
    events = [
        {
            "public_id": new_event_id(),
            "owner_id": owner,
            "type": event_type,
            "data": operation_item(row, reader_id=owner),
        }
        for owner in owners
    ]
    return json.dumps(events)


def _hold_events(hold: HoldRow, event_type: str) -> None:
    """Write ``event_type`` for the company that placed the hold and the held wallet's owner, each
    with the hold body as that user may see it."""
    owners = dict.fromkeys((hold.merchant_owner_id, hold.wallet_owner_id))
    events_write((owner, event_type, hold_item(hold, reader_id=owner)) for owner in owners)


def _parties(*wallet_ids: int) -> dict[int, Party]:
    """The wallets' tokens, owners and companies' names, by wallet id, in one statement."""
    with connection.cursor() as cursor:
        cursor.execute(sql.WALLET_PARTIES, [list(wallet_ids)])
        return {wallet_id: Party(*rest) for wallet_id, *rest in cursor.fetchall()}


class Debit(NamedTuple):
    """The wallet about to be debited or held, locked, with its money, and the company's own wallet."""

    wallet_id: int
    money: Money
    merchant_wallet_id: int
    merchant_wallet_token: str
    wallet: Party  # the debited (or held) wallet
    merchant: Party  # the company's wallet


def _lock_for_debit(*, merchant: User, wallet_token: str) -> Debit:
    """Lock the wallet ``wallet_token`` for a debit or a hold by ``merchant``, and read its money.

    Checks, in the contract's order: the merchant has a wallet (MerchantWalletMissing), the wallet
    exists (WalletNotFound), it is not the merchant's own (SameWallet). One round trip, unless the
    wallet has pending credits to fold or its holds changed while this waited for the lock.
    """
    if merchant.kind != User.Kind.COMPANY:
        raise NotAMerchant()
    with connection.cursor() as cursor:
        cursor.execute(sql.LOCK_FOR_DEBIT, {"merchant": merchant.pk, "token": wallet_token})
        row = cursor.fetchone()
    if row is None:
        if not Wallet.objects.filter(owner=merchant).exists():
            raise MerchantWalletMissing()
        raise WalletNotFound()
    wallet_id, balance, pending_credits, held, fresh, merchant_wallet_id, merchant_wallet_token, *names = row
    owner_id, company, merchant_company = names
    if merchant_wallet_id is None:
        raise MerchantWalletMissing()
    merchant_party = Party(merchant_wallet_token, merchant.pk, merchant_company)
    _remember_merchant_wallet(merchant.pk, merchant_wallet_id, merchant_party)
    if wallet_id == merchant_wallet_id:
        raise SameWallet()
    if pending_credits or not fresh:
        # Fold the pending credits (money of the wallet) and read the held amount again, current.
        money = _fold_and_add(wallet_id, Decimal("0.00"), over_max="Balance overflow.")
    else:
        money = Money(balance, held)
    return Debit(
        wallet_id,
        money,
        merchant_wallet_id,
        merchant_wallet_token,
        Party(wallet_token, owner_id, company),
        merchant_party,
    )


# A company's wallet (its id and its Party in the events) by the company's user id, as _lock_for_debit last read
# it: what wallet_charge's one-statement path renders the events with. Only a hint, so it is never wrong: that
# statement (CHARGE_AT_ONCE) writes nothing unless the rows it locks agree with it, and the transactional path,
# which runs then, refreshes it. Per process, bounded (the oldest entry goes first).
_merchant_wallets: dict[int, tuple[int, Party]] = {}
MERCHANT_WALLETS_CACHED = 10_000


def _remember_merchant_wallet(merchant_id: int, wallet_id: int, party: Party) -> None:
    if _merchant_wallets.get(merchant_id) == (wallet_id, party):
        return
    _merchant_wallets.pop(merchant_id, None)
    if len(_merchant_wallets) >= MERCHANT_WALLETS_CACHED:
        del _merchant_wallets[next(iter(_merchant_wallets))]
    _merchant_wallets[merchant_id] = (wallet_id, party)


@retried_on_conflict
def wallet_deposit(*, owner: User, wallet_token: str, amount: Decimal, summary: str = "") -> Operation:
    """Add ``amount`` to one of ``owner``'s wallets and record the deposit, atomically.

    Raises WalletNotFound if ``wallet_token`` is not one of ``owner``'s wallets (another user's
    wallet is not found either). Returns the operation; ``operation.target.current_balance`` and
    ``.held`` are the wallet's after it.
    """
    with transaction.atomic():
        # Lock the wallet: concurrent deposits and charges on it serialise here, so none is lost.
        # NO KEY: inserting an operation that references the wallet need not wait for this lock.
        with connection.cursor() as cursor:
            cursor.execute(sql.LOCK_OWNED_WALLET, {"token": wallet_token, "owner": owner.pk})
            row = cursor.fetchone()
        if row is None:
            raise WalletNotFound()
        wallet = Wallet(pk=row[0], token=wallet_token, owner_id=owner.pk)
        wallet.current_balance, wallet.held = _fold_and_add(
            wallet.pk, amount, over_max=f"The deposit would take the balance over {MAX_BALANCE}."
        )
        wallet.balance = wallet.current_balance  # its pending credits were just folded in: the row's balance
        operation = _record(
            Operation.Kind.DEPOSIT,
            source=None,
            source_id=None,
            target=Party(wallet.token, wallet.owner_id, None),
            target_id=wallet.pk,
            amount=amount,
            summary=summary,
            success=True,
            event_type="deposit.succeeded",
        )
    metrics.record_deposit(amount=amount)  # once committed: a conflict's rollback is run again
    operation.target = wallet
    return operation


REFUSED_ATTEMPTS_WINDOW = timedelta(hours=1)


def _check_refused_attempts(debit: Debit) -> None:
    """TooManyRefusedAttempts when the company's charges and holds on this wallet were refused
    ``WALLET_SERVICE_REFUSED_ATTEMPTS_PER_HOUR`` times within the last hour (0: no limit). Read only on
    the way to a refusal: a charge that succeeds pays nothing for it."""
    limit = settings.WALLET_SERVICE_REFUSED_ATTEMPTS_PER_HOUR
    if not limit:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            sql.REFUSED_ATTEMPTS,
            {
                "wallet": debit.wallet_id,
                "merchant_wallet": debit.merchant_wallet_id,
                "window": REFUSED_ATTEMPTS_WINDOW,
                "offset": limit - 1,
            },
        )
        found = cursor.fetchone()
    if found is not None:
        raise TooManyRefusedAttempts(retry_after=max(1, found[0]))


def _record_refused(*, kind: str, debit: Debit, amount: Decimal, summary: str) -> Operation:
    """Record a charge or hold refused for insufficient funds (it moves nothing), with its events;
    TooManyRefusedAttempts instead, recording nothing, past the company's limit on this wallet."""
    _check_refused_attempts(debit)
    return _record(
        kind,
        source=debit.wallet,
        source_id=debit.wallet_id,
        target=debit.merchant,
        target_id=debit.merchant_wallet_id,
        amount=amount,
        summary=summary,
        success=False,
        event_type=f"{kind}.failed",
    )


CHARGE_OVER_MAX = f"The charge would take your balance over {MAX_BALANCE}."


def _charge_events(*, source: Party, target: Party, amount: Decimal, summary: str) -> str:
    """A successful charge's events (CHARGE_WRITES, CHARGE_AT_ONCE): written in one place."""
    return _events_json(
        Operation.Kind.CHARGE,
        source=source,
        target=target,
        amount=amount,
        summary=summary,
        success=True,
        event_type="charge.succeeded",
    )


def _charged(row: tuple, *, source_id: int, merchant_wallet: Wallet, amount: Decimal, summary: str) -> Operation:
    """The successful charge from CHARGE_WRITES' or CHARGE_AT_ONCE's row: the operation's id and date, and the
    merchant wallet's money after the credit, which becomes ``operation.target``'s ``current_balance`` and ``held``."""
    operation_id, created_at, *money = row
    merchant_wallet.current_balance, merchant_wallet.held = money
    operation = Operation(
        id=operation_id,
        kind=Operation.Kind.CHARGE,
        source_id=source_id,
        target_id=merchant_wallet.pk,
        amount=amount,
        summary=summary,
        success=True,
        created_at=created_at,
        hold_id=None,
        refund_of_id=None,
    )
    operation.target = merchant_wallet
    return operation


def _charge_writes(debit: Debit, *, amount: Decimal, summary: str) -> Operation:
    """A successful charge's writes, in one statement (wallets.sql.CHARGE_WRITES): the debit of the locked
    wallet, the merchant's credit without waiting (as _credit_without_waiting), the operation and its
    events (as _record). Returns the operation, its ``target`` the merchant's wallet after the credit."""
    params = {
        "source": debit.wallet_id,
        "balance": debit.money.balance - amount,
        "target": debit.merchant_wallet_id,
        "amount": amount,
        "summary": summary,
        "events": _charge_events(source=debit.wallet, target=debit.merchant, amount=amount, summary=summary),
    }
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.CHARGE_WRITES, params)
            row = cursor.fetchone()
    except (IntegrityError, DataError) as error:  # numeric overflow or the balance CHECK constraints
        raise BalanceOverflow(CHARGE_OVER_MAX) from error
    merchant_wallet = Wallet(pk=debit.merchant_wallet_id, token=debit.merchant_wallet_token)
    return _charged(row, source_id=debit.wallet_id, merchant_wallet=merchant_wallet, amount=amount, summary=summary)


def _charge_at_once(*, merchant: User, wallet_token: str, amount: Decimal, summary: str) -> Operation | None:
    """The whole charge in one statement (wallets.sql.CHARGE_AT_ONCE) when it succeeds and this process knows the
    merchant's wallet; None, having written nothing, when the transactional path must decide instead.

    Outside a transaction the statement runs in autocommit: one round trip, no BEGIN and COMMIT. Inside one (an
    Idempotency-Key's) it is one statement of that transaction, and a refusal leaves the charged wallet locked
    by it, as the transactional path that follows would lock it anyway. The events are rendered here for a
    charged wallet owned by a client other than the merchant, whom the statement finds; for a company's wallet
    (it may have pending credits to fold, and its name would be in the events) the statement declines.
    """
    known = _merchant_wallets.get(merchant.pk)
    if known is None:
        return None
    merchant_wallet_id, merchant_party = known
    params = {
        "merchant": merchant.pk,
        "token": wallet_token,
        "target": merchant_wallet_id,
        "target_token": merchant_party.token,
        "target_company": merchant_party.company,
        "company": None,
        "amount": amount,
        "summary": summary,
        "events": _charge_events(
            source=Party(wallet_token, None, None), target=merchant_party, amount=amount, summary=summary
        ),
    }
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.CHARGE_AT_ONCE, params)
            row = cursor.fetchone()
    except (IntegrityError, DataError) as error:  # past the maximum balance, as CHARGE_WRITES
        if connection.in_atomic_block:
            transaction.set_rollback(True)  # the transaction is aborted: nothing of it may commit
        raise BalanceOverflow(CHARGE_OVER_MAX) from error
    if row is None:
        return None
    *row, source_id = row
    merchant_wallet = Wallet(pk=merchant_wallet_id, token=merchant_party.token)
    return _charged(row, source_id=source_id, merchant_wallet=merchant_wallet, amount=amount, summary=summary)


@retried_on_conflict
def wallet_charge(*, merchant: User, wallet_token: str, amount: Decimal, summary: str = "") -> Operation:
    """Move ``amount`` from the wallet ``wallet_token`` to ``merchant``'s wallet, atomically.

    Checks, in the contract's order: the merchant has a wallet (MerchantWalletMissing), the charged
    wallet exists (WalletNotFound), it is not the merchant's own (SameWallet), and its ``available``
    (balance minus live holds) covers the amount. When it does not, nothing moves, the failed
    attempt is recorded in the ledger and committed, and then InsufficientFunds is raised carrying
    that record. Returns the successful operation; ``operation.target`` is the merchant's wallet
    with its ``current_balance`` and ``held`` after it.

    Only the charged wallet is locked for the whole transaction: its money is checked. The
    merchant's wallet is credited without waiting for its lock (see _credit_without_waiting), so a
    merchant receiving every charge is not a queue. A charge that succeeds is usually one statement
    (_charge_at_once, docs/LEDGER.md); the transactional path below decides everything else. A charge that
    PostgreSQL aborts for a deadlock is run again (wallet_service.conflicts), outside a caller's transaction.
    """
    if merchant.kind != User.Kind.COMPANY:
        raise NotAMerchant()
    # The common case, a charge that succeeds, in one statement; anything else as below.
    operation = _charge_at_once(merchant=merchant, wallet_token=wallet_token, amount=amount, summary=summary)
    if operation is not None:
        metrics.record_charge(amount=amount, success=True)
        return operation
    with transaction.atomic():
        # Lock the charged wallet: charges and holds racing for its money check and take it one
        # after the other (no double spend, no over-reservation).
        debit = _lock_for_debit(merchant=merchant, wallet_token=wallet_token)
        # A short balance is a business outcome, not an error: the attempt is recorded as failed.
        success = debit.money.available >= amount
        if success:
            operation = _charge_writes(debit, amount=amount, summary=summary)
        else:
            operation = _record_refused(kind=Operation.Kind.CHARGE, debit=debit, amount=amount, summary=summary)
    metrics.record_charge(amount=amount, success=success)  # once committed: a conflict's rollback is run again
    # Outside the atomic block: the failed attempt is committed before the error is raised.
    if not operation.success:
        raise InsufficientFunds(operation)
    return operation


HOLD_DEFAULT_EXPIRY = timedelta(days=7)


@retried_on_conflict
def hold_create(
    *,
    merchant: User,
    wallet_token: str,
    amount: Decimal,
    summary: str = "",
    expires_in: timedelta = HOLD_DEFAULT_EXPIRY,
) -> HoldRow:
    """Reserve ``amount`` of the wallet ``wallet_token``'s ``available`` for ``merchant``, until
    ``expires_in`` from now. Nothing moves; the wallet's ``held`` grows by ``amount``.

    The checks and their order are a charge's. When ``available`` is short, no hold is created, a
    failed ``hold`` operation is recorded and committed, and InsufficientFunds is raised with it.
    A successful hold is recorded as a ``hold`` operation too (it moves no money). Returns the hold.
    """
    with transaction.atomic():
        # Lock the held wallet: holds and charges racing for its available money serialise here.
        debit = _lock_for_debit(merchant=merchant, wallet_token=wallet_token)
        if debit.money.available >= amount:
            # The wallet's row is rewritten (by zero): the mark that its holds changed (see LOCK_FOR_DEBIT).
            _fold_and_add(debit.wallet_id, Decimal("0.00"), over_max="Balance overflow.")
            hold = Hold.objects.create(
                wallet_id=debit.wallet_id,
                merchant_wallet_id=debit.merchant_wallet_id,
                amount=amount,
                summary=summary,
                expires_at=Now() + expires_in,
            )
            hold.refresh_from_db(fields=["created_at", "expires_at"])
            Operation.objects.create(
                kind=Operation.Kind.HOLD,
                source_id=debit.wallet_id,
                target_id=debit.merchant_wallet_id,
                amount=amount,
                summary=summary,
                success=True,
                hold=hold,
            )
            row = HoldRow(
                hold.public_id,
                debit.wallet.token,
                debit.wallet.owner_id,
                debit.merchant.token,
                debit.merchant.owner_id,
                amount,
                Decimal("0.00"),
                Hold.Status.PENDING,
                summary,
                hold.created_at,
                hold.expires_at,
                False,
            )
            _hold_events(row, "hold.created")
            refused = None
        else:
            refused = _record_refused(kind=Operation.Kind.HOLD, debit=debit, amount=amount, summary=summary)
    if refused is not None:
        raise InsufficientFunds(refused)
    return row


class LockedHold(NamedTuple):
    id: int
    wallet_id: int
    merchant_wallet_id: int
    row: HoldRow


def _lock_hold(*, merchant: User, hold_id: str) -> LockedHold:
    """Lock ``merchant``'s hold ``hold_id``; HoldNotFound for anyone else's, HoldNotPending unless live."""
    if merchant.kind != User.Kind.COMPANY:
        raise NotAMerchant()
    with connection.cursor() as cursor:
        # Lock the hold: captures and voids of one hold resolve it one after the other.
        cursor.execute(sql.LOCK_HOLD, {"hold": hold_id, "merchant": merchant.pk})
        found = cursor.fetchone()
    if found is None:
        raise HoldNotFound()
    hold = LockedHold(*found[:3], HoldRow(*found[3:]))
    if hold.row.status != Hold.Status.PENDING or hold.row.expired:
        raise HoldNotPending()
    return hold


@retried_on_conflict
def hold_capture(*, merchant: User, hold_id: str, amount: Decimal | None = None, final: bool = True) -> HoldRow:
    """Move ``amount`` (default: all that remains) of a pending hold from the held wallet to the
    merchant's, recorded as a ``capture``. ``final`` releases the rest and resolves the hold.

    Never fails for lack of funds: the money was reserved. HoldNotFound, HoldNotPending (captured,
    voided or expired), AmountAboveRemaining. The hold is locked first, then the held wallet: no
    two captures of one hold can take more than its amount, and nobody holding a wallet lock ever
    waits for a hold, so this cannot deadlock with charges. Returns the hold after the capture.
    """
    with transaction.atomic():
        hold = _lock_hold(merchant=merchant, hold_id=hold_id)
        remaining = hold.row.amount - hold.row.captured
        amount = remaining if amount is None else amount
        if amount > remaining:
            raise AmountAboveRemaining(remaining)
        status = Hold.Status.CAPTURED if final else Hold.Status.PENDING
        row = hold.row._replace(captured=hold.row.captured + amount, status=status)
        Hold.objects.filter(pk=hold.id).update(captured=row.captured, status=status)
        # Debit the held wallet (under its lock; this rewrite also marks that its holds changed).
        _fold_and_add(hold.wallet_id, -amount, over_max="Balance overflow.")
        if amount:
            _credit_without_waiting(
                hold.merchant_wallet_id, amount, over_max=f"The capture would take your balance over {MAX_BALANCE}."
            )
            Operation.objects.create(
                kind=Operation.Kind.CAPTURE,
                source_id=hold.wallet_id,
                target_id=hold.merchant_wallet_id,
                amount=amount,
                success=True,
                hold_id=hold.id,
                summary=row.summary,
            )
        _hold_events(row, "hold.captured")
    return row


@retried_on_conflict
def hold_void(*, merchant: User, hold_id: str) -> HoldRow:
    """Release what a pending hold still reserves; nothing moves. HoldNotFound, HoldNotPending."""
    with transaction.atomic():
        hold = _lock_hold(merchant=merchant, hold_id=hold_id)
        row = hold.row._replace(status=Hold.Status.VOIDED)
        Hold.objects.filter(pk=hold.id).update(status=Hold.Status.VOIDED)
        # Rewrite the held wallet's row: the mark that its holds changed (see LOCK_FOR_DEBIT).
        _fold_and_add(hold.wallet_id, Decimal("0.00"), over_max="Balance overflow.")
        _hold_events(row, "hold.voided")
    return row


def holds_expire() -> int:
    """Mark the pending holds past their ``expires_at`` as expired, with their hold.expired events;
    returns how many.

    Bookkeeping only: an expired hold already stopped counting in its wallet's ``held`` at its
    ``expires_at`` (wallets.sql.HELD), so nothing about money depends on this running. Each hold is
    locked by the UPDATE, so a capture or void racing with it either resolves the hold first (and
    this skips it) or finds it expired.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql.EXPIRE_HOLDS)
        expired = [HoldRow(*found) for found in cursor.fetchall()]
        for row in expired:
            _hold_events(row, "hold.expired")
    return len(expired)


class RefundResult(NamedTuple):
    refund: Operation
    refunded: Decimal  # of the refunded operation, this refund included
    merchant_wallet: Wallet  # with current_balance and held


@retried_on_conflict
def wallet_refund(
    *, merchant: User, operation_id: int, amount: Decimal | None = None, summary: str = ""
) -> RefundResult:
    """Give back ``amount`` (default: all that is left) of a successful charge or capture into
    ``merchant``'s wallet, from that wallet's ``available`` to the wallet that paid.

    OperationNotFound when the operation does not involve the merchant's wallet; NotRefundable when
    it does but is not a successful charge or capture into it; AmountAboveRefundable past what is
    left; InsufficientFunds (nothing recorded) when the merchant's ``available`` is short. The
    merchant's wallet is locked first: every refund of an operation takes that lock, so racing
    refunds never give back more than was charged. The payer is credited without waiting.
    """
    if merchant.kind != User.Kind.COMPANY:
        raise NotAMerchant()
    with transaction.atomic():
        merchant_wallet = (
            Wallet.objects.select_for_update(no_key=True).filter(owner=merchant).only("token").order_by("pk").first()
        )
        original = (
            Operation.objects.filter(pk=operation_id).only("kind", "success", "source", "target", "amount").first()
        )
        if (
            merchant_wallet is None
            or original is None
            or merchant_wallet.pk not in (original.source_id, original.target_id)
        ):
            raise OperationNotFound()
        if not (
            original.kind in (Operation.Kind.CHARGE, Operation.Kind.CAPTURE)
            and original.success
            and original.target_id == merchant_wallet.pk
        ):
            raise NotRefundable()
        with connection.cursor() as cursor:
            cursor.execute(sql.REFUNDED, [original.pk])
            (refunded,) = cursor.fetchone()
        left = original.amount - refunded
        amount = left if amount is None else amount
        if not left or amount > left:
            raise AmountAboveRefundable(left)
        money = _fold_and_add(merchant_wallet.pk, Decimal("0.00"), over_max="Balance overflow.")
        if money.available < amount:
            raise InsufficientFunds(None)
        merchant_wallet.current_balance, merchant_wallet.held = money.balance - amount, money.held
        _set_balance(merchant_wallet.pk, merchant_wallet.current_balance)
        _credit_without_waiting(
            original.source_id, amount, over_max="The refund would take the balance over the maximum."
        )
        parties = _parties(merchant_wallet.pk, original.source_id)
        refund = _record(
            Operation.Kind.REFUND,
            source=parties[merchant_wallet.pk],
            source_id=merchant_wallet.pk,
            target=parties[original.source_id],
            target_id=original.source_id,
            amount=amount,
            summary=summary,
            success=True,
            event_type="refund.succeeded",
            refund_of_id=original.pk,
        )
    return RefundResult(refund, refunded + amount, merchant_wallet)


class ChargeRequest(NamedTuple):
    wallet_token: str
    amount: Decimal
    summary: str


class ChargeOutcome(NamedTuple):
    """One item of a bulk charge: ``status`` 200, 402 (with ``operation``), 404, 400 (same_wallet) or 429 (throttled:
    refused past WALLET_SERVICE_REFUSED_ATTEMPTS_PER_HOUR, where it is set)."""

    status: int
    code: str | None = None
    operation: int | None = None


class BulkResult(NamedTuple):
    outcomes: list[ChargeOutcome]
    merchant_wallet: Wallet  # with current_balance and held


@retried_on_conflict
def wallet_charge_many(*, merchant: User, charges: list[ChargeRequest]) -> BulkResult:
    """Run ``charges`` in order, each as ``wallet_charge`` would alone, in ONE transaction.

    Set-based, two statements whatever the batch's size: BULK_PARTIES reads, without locks, the parties
    and takes the operations' ids, so that the events are rendered before any lock; then CHARGE_MANY (the
    function wallet_charge_many) locks the charged wallets in id order (crossing batches cannot deadlock),
    folds their pending credits, decides each item, and writes the debits, the operations with their
    events and the company's credit. Outside a transaction that statement is the batch's transaction, so
    no round trip is spent holding the locks every batch crossing those wallets waits for.
    Items that charge the same wallet see each other's effects in order. A refused item (402) is
    recorded as a failed charge, like a lone one; a wallet that does not exist (404) or the company's
    own (400 same_wallet) leaves no trace. MerchantWalletMissing refuses the whole batch. After a crash,
    either every item's outcome is in the ledger or none is.
    """
    if merchant.kind != User.Kind.COMPANY:
        raise NotAMerchant()
    with connection.cursor() as cursor:
        cursor.execute(sql.BULK_PARTIES, {"merchant": merchant.pk, "items": [c.wallet_token for c in charges]})
        merchant_wallet, merchant_company, ids, parties = None, None, [], {}
        for role, wallet_id, token, owner_id, company, merchant_ids in cursor.fetchall():
            if role == "merchant":
                merchant_wallet = Wallet(pk=wallet_id, token=token, owner_id=merchant.pk)
                merchant_company, ids = company, merchant_ids or []
            else:
                parties[token] = (wallet_id, owner_id, company)
    if merchant_wallet is None:
        raise MerchantWalletMissing()
    # The recorded items (their wallet exists and is not the company's), each with its operation's id,
    # and their events as each owner's history will show them: the outcome and date are the statement's.
    recorded = []  # (item index, operation id, wallet id)
    events = []
    for index, charge in enumerate(charges):
        if charge.wallet_token == merchant_wallet.token or charge.wallet_token not in parties:
            continue
        operation_id = ids[len(recorded)]
        wallet_id, owner_id, company = parties[charge.wallet_token]
        recorded.append((index, operation_id, wallet_id))
        row = OperationRow(
            operation_id, Operation.Kind.CHARGE, charge.amount, charge.summary, True, EPOCH,
            charge.wallet_token, merchant_wallet.token, owner_id, merchant.pk, company, merchant_company, None, None,
        )  # fmt: skip
        for owner in dict.fromkeys((owner_id, merchant.pk)):
            data = operation_item(row, reader_id=owner)
            del data["success"], data["date"]  # the statement writes the outcome and the operation's date
            events.append({"public_id": new_event_id(), "owner_id": owner, "data": data, "op": operation_id})
    over_max = f"The charges would take your balance over {MAX_BALANCE}."
    params = {
        "target": merchant_wallet.pk,
        "ids": [operation_id for _, operation_id, _ in recorded],
        "sources": [wallet_id for *_, wallet_id in recorded],
        "amounts": [charges[index].amount for index, *_ in recorded],
        "summaries": [charges[index].summary for index, *_ in recorded],
        "events": json.dumps(events),
        "refused_limit": min(settings.WALLET_SERVICE_REFUSED_ATTEMPTS_PER_HOUR, 2**31 - 1),  # the function's integer
        "refused_window": REFUSED_ATTEMPTS_WINDOW,
    }
    # Everything under the wallets' locks is this one statement (wallets/migrations/0009): outside a transaction
    # it is its own, so the locks it takes are released when it ends, with no round trip in between; inside one
    # (an Idempotency-Key's) they are held to that transaction's commit.
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.CHARGE_MANY, params)
            decided, balance, held, throttled = cursor.fetchone()
    except (IntegrityError, DataError) as error:
        # Numeric overflow, the balance CHECK constraints, or the company's money over MAX_BALANCE (a pending
        # credit must stay foldable: the function refuses it): nothing of the batch was written.
        raise BalanceOverflow(over_max) from error
    merchant_wallet.current_balance, merchant_wallet.held = balance, held
    by_index = {
        index: (operation_id, outcome) for (index, operation_id, _), outcome in zip(recorded, decided, strict=True)
    }
    throttled_items = {recorded[ordinal - 1][0] for ordinal in throttled}  # the function's ordinals count from 1
    outcomes: list[ChargeOutcome] = []
    total, succeeded, failed = Decimal("0.00"), 0, 0
    for index, charge in enumerate(charges):
        operation_id, outcome = by_index.get(index, (None, None))
        if index in throttled_items:  # refused past the company's limit on this wallet: not recorded
            outcomes.append(ChargeOutcome(429, "throttled"))
        elif outcome is None:  # not recorded: the company's own wallet, or no such wallet
            same = charge.wallet_token == merchant_wallet.token
            outcomes.append(ChargeOutcome(400, "same_wallet") if same else ChargeOutcome(404, "not_found"))
        elif outcome:
            outcomes.append(ChargeOutcome(200, None, operation_id))
            total += charge.amount
            succeeded += 1
        else:
            outcomes.append(ChargeOutcome(402, "insufficient_funds", operation_id))
            failed += 1
    if succeeded or failed:
        metrics.record_charges(succeeded=succeeded, failed=failed, amount=total)
    return BulkResult(outcomes, merchant_wallet)
