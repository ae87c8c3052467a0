"""Wallet endpoints. Thin views: parse input, call one service or selector, render output."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, NotRequired, TypedDict

from django.utils.dateparse import parse_datetime
from rest_framework import serializers
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from idempotency.apis import IdempotentApiMixin
from wallet_service.api.cursors import InvalidCursor, decode_cursor, encode_cursor
from wallet_service.api.fields import AmountField, StrictCharField, format_money
from wallet_service.api.pagination import PAGE_DEFAULT_LIMIT, next_link, parse_limit
from wallet_service.api.shapes import Doc, Money
from wallets import selectors, services
from wallets.items import OperationRow, hold_item, operation_item
from wallets.models import Wallet
from wallets.selectors import HistoryPosition

HISTORY_CURSOR = "wallets.history"
LIST_CURSOR = "wallets.list"
HOLD_DEFAULT_EXPIRES_IN = 604800  # 7 days
HOLD_MAX_EXPIRES_IN = 2592000  # 30 days


class WalletOutput(TypedDict):
    wallet: Annotated[str, Doc("The wallet's token: URL-safe, unguessable, never changes.")]
    balance: Annotated[Money, Doc('The wallet\'s money. Two decimals, e.g. "150.00".')]
    held: Annotated[Money, Doc("The part of the balance reserved by pending holds.")]
    available: Annotated[Money, Doc("`balance - held`: what a charge, a new hold or a refund can take.")]


class ChargeOutput(WalletOutput):
    operation: Annotated[int, Doc("The charge's `id` in the history: what a refund names.")]


class RefundOutput(WalletOutput):
    refund: Annotated[int, Doc("The refund's operation id.")]
    operation: Annotated[int, Doc("The refunded operation's id.")]
    amount: Money
    refunded: Annotated[Money, Doc("Refunded of that operation so far, this refund included.")]


class ChargeResult(TypedDict):
    status: Annotated[Literal[200, 402, 404, 400, 429], Doc("What the charge would have answered alone.")]
    code: NotRequired[
        Annotated[Literal["insufficient_funds", "not_found", "same_wallet", "throttled"], Doc("Absent for a 200.")]
    ]
    operation: NotRequired[Annotated[int, Doc("The recorded operation (a 200's charge, a 402's failed charge).")]]


class BulkChargeOutput(WalletOutput):
    results: Annotated[list[ChargeResult], Doc("Item i's outcome, in the request's order.")]


def wallet_body(wallet: Wallet) -> WalletOutput:
    """A wallet as the API shows it; ``current_balance`` and ``held`` come from a selector or a service."""
    return {
        "wallet": wallet.token,
        "balance": format_money(wallet.current_balance),
        "held": format_money(wallet.held),
        "available": format_money(wallet.current_balance - wallet.held),
    }


class IsCompany(BasePermission):
    message = "Only companies can charge wallets."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.kind == User.Kind.COMPANY)


class EmptyInputSerializer(serializers.Serializer):
    """A body that must be a JSON object (or empty); its members are ignored."""


class MoneyMovementInputSerializer(serializers.Serializer):
    # A token is matched exactly as sent: " abc" is not the wallet "abc".
    wallet = StrictCharField(max_length=255, trim_whitespace=False)
    amount = AmountField()
    summary = StrictCharField(
        max_length=255, allow_blank=True, allow_null=True, required=False, default="", trim_whitespace=False
    )

    def validate_summary(self, value: str | None) -> str:
        return value or ""


_AMOUNT = AmountField()
_TEXT_MAX = 255


def _plain_text(value) -> bool:
    """A string the serializer's CharField(max_length=255) takes unchanged: no NUL, no lone surrogate."""
    if not isinstance(value, str) or len(value) > _TEXT_MAX or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def money_movement_input(data) -> dict:
    """``MoneyMovementInputSerializer``'s validated data: ``wallet``, ``amount`` and ``summary``.

    A body the serializer would take as it is (a string ``wallet``, an amount ``AmountField`` takes, a
    string or null ``summary`` or none) is read here directly, with the serializer's own rules; anything
    else goes through the serializer, so every refusal keeps its messages. Building the serializer (a
    deep copy of its fields, then DRF's validation machinery) cost more than the rest of a request's
    Python outside the database (bench/INSTRUCTIONS.md); ``wallets/tests/test_apis_input.py`` checks the
    two agree.
    """
    read = _read_directly(data)
    if read is not None:
        return read
    serializer = MoneyMovementInputSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _read_directly(data) -> dict | None:
    """``data`` as MoneyMovementInputSerializer validates it, when the serializer would take it as it is;
    None for anything else (then only the serializer may answer, with its messages)."""
    if type(data) is dict:
        wallet, summary = data.get("wallet"), data.get("summary", "")
        if wallet and _plain_text(wallet) and (summary is None or _plain_text(summary)):
            try:
                amount = _AMOUNT.to_internal_value(data.get("amount"))
            except serializers.ValidationError:
                return None
            return {"wallet": wallet, "amount": amount, "summary": summary or ""}
    return None


class WalletCreateApi(IdempotentApiMixin, APIView):
    def post(self, request):
        EmptyInputSerializer(data=request.data).is_valid(raise_exception=True)
        wallet = services.wallet_create(owner=request.user)
        return Response(wallet_body(wallet), status=201)


class WalletDepositApi(IdempotentApiMixin, APIView):
    def post(self, request):
        data = money_movement_input(request.data)
        operation = services.wallet_deposit(
            owner=request.user, wallet_token=data["wallet"], amount=data["amount"], summary=data["summary"]
        )
        return Response(wallet_body(operation.target))


class WalletChargeApi(IdempotentApiMixin, APIView):
    permission_classes = (IsAuthenticated, IsCompany)

    def post(self, request):
        data = money_movement_input(request.data)
        operation = services.wallet_charge(
            merchant=request.user, wallet_token=data["wallet"], amount=data["amount"], summary=data["summary"]
        )
        body: ChargeOutput = {**wallet_body(operation.target), "operation": operation.id}
        return Response(body)


class WalletInfoApi(APIView):
    def get(self, request, token: str):
        return Response(wallet_body(selectors.wallet_get(owner=request.user, token=token)))


CURSOR_ERROR = "This cursor was not issued by this service for this list, or it has expired; start from the first page."


class ListQuerySerializer(serializers.Serializer):
    limit = serializers.CharField(required=False, trim_whitespace=False)
    cursor = serializers.CharField(required=False, trim_whitespace=False)

    def validate_limit(self, value: str) -> int:
        return parse_limit(value)

    def __init__(self, *args, owner: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = owner

    def validate_cursor(self, value: str) -> int:
        try:
            payload = decode_cursor(LIST_CURSOR, value)
        except InvalidCursor:
            raise serializers.ValidationError(CURSOR_ERROR) from None
        after_id = payload.get("after")
        if payload.get("owner") != self.owner.pk or not isinstance(after_id, int):
            raise serializers.ValidationError(CURSOR_ERROR)
        return after_id


class WalletListApi(APIView):
    """Oldest first, keyset-paginated like the history: the next page's URL is in ``Link``."""

    def get(self, request):
        query = ListQuerySerializer(data=request.query_params.dict(), owner=request.user)
        query.is_valid(raise_exception=True)
        limit = query.validated_data.get("limit", PAGE_DEFAULT_LIMIT)
        wallets = selectors.wallet_list(
            owner=request.user, after_id=query.validated_data.get("cursor"), limit=limit + 1
        )
        headers = {}
        if len(wallets) > limit:
            wallets = wallets[:limit]
            cursor = encode_cursor(LIST_CURSOR, {"owner": request.user.pk, "after": wallets[-1].pk})
            headers = next_link(request, ("limit",), cursor)
        return Response([wallet_body(wallet) for wallet in wallets], headers=headers)


def parse_instant(value: str) -> datetime:
    """An ISO 8601 date-time (UTC when it has no zone) or a plain date (midnight UTC)."""
    try:
        parsed = parse_datetime(value)
        if parsed is None:
            raise ValueError(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise serializers.ValidationError(
            "Enter an ISO 8601 date-time (2021-04-11T11:05:13Z) or date (2021-04-11)."
        ) from None


class HistoryQuerySerializer(serializers.Serializer):
    """``limit``, ``from``, ``to`` and ``cursor``; validated data holds ``limit``, ``since``, ``until``, ``cursor``."""

    def __init__(self, *args, wallet_token: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.wallet_token = wallet_token

    def get_fields(self):
        # "from" is a Python keyword, so these fields cannot be declared as class attributes.
        return {
            "limit": serializers.CharField(required=False, trim_whitespace=False),
            "cursor": serializers.CharField(required=False, trim_whitespace=False),
            "from": serializers.CharField(required=False, trim_whitespace=False, source="since"),
            "to": serializers.CharField(required=False, trim_whitespace=False, source="until"),
        }

    def validate_limit(self, value: str) -> int:
        return parse_limit(value)

    def validate_from(self, value: str) -> datetime:
        return parse_instant(value)

    def validate_to(self, value: str) -> datetime:
        return parse_instant(value)

    def validate_cursor(self, value: str) -> HistoryPosition:
        try:
            payload = decode_cursor(HISTORY_CURSOR, value)
            if payload["w"] != self.wallet_token:
                raise ValueError("cursor of another wallet")
            snapshot = payload.get("s")
            if snapshot is not None and not isinstance(snapshot, str):
                raise TypeError("snapshot")
            return HistoryPosition(
                created_at=datetime.fromisoformat(payload["t"]), id=int(payload["i"]), snapshot=snapshot
            )
        except (InvalidCursor, ValueError, TypeError, KeyError, OverflowError):
            raise serializers.ValidationError(CURSOR_ERROR) from None

    def validate(self, attrs):
        since, until = attrs.get("since"), attrs.get("until")
        if since is not None and until is not None and since > until:
            raise serializers.ValidationError({"from": ["'from' must not be later than 'to'."]})
        return attrs


def history_cursor(wallet_token: str, operation: OperationRow, snapshot: str | None) -> str:
    payload = {"w": wallet_token, "t": operation.created_at.isoformat(), "i": operation.id}
    if snapshot is not None:
        payload["s"] = snapshot  # the walk's first snapshot, carried to every later page
    return encode_cursor(HISTORY_CURSOR, payload)


class WalletHistoryApi(APIView):
    """Newest first, keyset-paginated; the next page's URL is in ``Link: <...>; rel="next"``."""

    def get(self, request, token: str):
        query = HistoryQuerySerializer(data=request.query_params.dict(), wallet_token=token)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        limit = params.get("limit", PAGE_DEFAULT_LIMIT)
        operations, snapshot = selectors.operation_list(
            owner=request.user,
            wallet_token=token,
            after=params.get("cursor"),
            since=params.get("since"),
            until=params.get("until"),
            limit=limit + 1,
        )
        headers = {}
        if len(operations) > limit:
            operations = operations[:limit]
            headers = next_link(request, ("limit", "from", "to"), history_cursor(token, operations[-1], snapshot))
        reader_id = request.user.pk
        return Response([operation_item(operation, reader_id=reader_id) for operation in operations], headers=headers)


class HoldCreateInputSerializer(MoneyMovementInputSerializer):
    expires_in = serializers.IntegerField(required=False, min_value=1, max_value=HOLD_MAX_EXPIRES_IN)

    def to_internal_value(self, data):
        # A whole number of seconds: refuse 1.5, "60" and true rather than round or coerce them.
        if isinstance(data, dict) and "expires_in" in data:
            value = data["expires_in"]
            if isinstance(value, bool) or not isinstance(value, int):
                raise serializers.ValidationError({"expires_in": ["Enter a whole number of seconds."]})
        return super().to_internal_value(data)


class HoldCaptureInputSerializer(serializers.Serializer):
    amount = AmountField(required=False)
    final = serializers.BooleanField(required=False, default=True)

    def to_internal_value(self, data):
        if isinstance(data, dict) and "final" in data and not isinstance(data["final"], bool):
            raise serializers.ValidationError({"final": ["Enter true or false."]})
        return super().to_internal_value(data)


class WalletHoldCreateApi(IdempotentApiMixin, APIView):
    permission_classes = (IsAuthenticated, IsCompany)

    def post(self, request):
        serializer = HoldCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        hold = services.hold_create(
            merchant=request.user,
            wallet_token=data["wallet"],
            amount=data["amount"],
            summary=data["summary"],
            expires_in=timedelta(seconds=data.get("expires_in", HOLD_DEFAULT_EXPIRES_IN)),
        )
        return Response(hold_item(hold, reader_id=request.user.pk), status=201)


class WalletHoldDetailApi(APIView):
    permission_classes = (IsAuthenticated, IsCompany)

    def get(self, request, hold_id: str):
        return Response(
            hold_item(selectors.hold_get(merchant=request.user, hold_id=hold_id), reader_id=request.user.pk)
        )


class WalletHoldCaptureApi(IdempotentApiMixin, APIView):
    permission_classes = (IsAuthenticated, IsCompany)

    def post(self, request, hold_id: str):
        serializer = HoldCaptureInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        selectors.check_hold_id(hold_id)
        hold = services.hold_capture(
            merchant=request.user, hold_id=hold_id, amount=data.get("amount"), final=data["final"]
        )
        return Response(hold_item(hold, reader_id=request.user.pk))


class WalletHoldVoidApi(IdempotentApiMixin, APIView):
    permission_classes = (IsAuthenticated, IsCompany)

    def post(self, request, hold_id: str):
        EmptyInputSerializer(data=request.data).is_valid(raise_exception=True)
        selectors.check_hold_id(hold_id)
        hold = services.hold_void(merchant=request.user, hold_id=hold_id)
        return Response(hold_item(hold, reader_id=request.user.pk))


class RefundInputSerializer(serializers.Serializer):
    operation = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    amount = AmountField(required=False)
    summary = StrictCharField(
        max_length=255, allow_blank=True, allow_null=True, required=False, default="", trim_whitespace=False
    )

    def to_internal_value(self, data):
        if isinstance(data, dict) and "operation" in data:
            value = data["operation"]
            if isinstance(value, bool) or not isinstance(value, int):
                raise serializers.ValidationError({"operation": ["Enter an operation id (a whole number)."]})
        return super().to_internal_value(data)

    def validate_summary(self, value: str | None) -> str:
        return value or ""


class WalletRefundApi(IdempotentApiMixin, APIView):
    permission_classes = (IsAuthenticated, IsCompany)
    field_of = {"operation_id": "operation"}  # the service's argument -> the request's field

    def post(self, request):
        serializer = RefundInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = services.wallet_refund(
            merchant=request.user, operation_id=data["operation"], amount=data.get("amount"), summary=data["summary"]
        )
        body: RefundOutput = {
            "refund": result.refund.id,
            "operation": data["operation"],
            "amount": format_money(result.refund.amount),
            "refunded": format_money(result.refunded),
            **wallet_body(result.merchant_wallet),
        }
        return Response(body)


BULK_MAX_CHARGES = 1000


class BulkChargeInputSerializer(serializers.Serializer):
    charges = serializers.ListField(
        child=MoneyMovementInputSerializer(), allow_empty=False, min_length=1, max_length=BULK_MAX_CHARGES
    )


def bulk_charge_input(data) -> list[dict]:
    """``BulkChargeInputSerializer``'s validated ``charges``: read directly (as money_movement_input reads one)
    when the serializer would take every item as it is, else by the serializer, whose messages name each
    refused item. The serializer's validation of 100 items was a third of a batch's Python."""
    if type(data) is dict:
        items = data.get("charges")
        if type(items) is list and 1 <= len(items) <= BULK_MAX_CHARGES:
            read = [_read_directly(item) for item in items]
            if None not in read:
                return read
    serializer = BulkChargeInputSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data["charges"]


def outcome_body(outcome: services.ChargeOutcome) -> ChargeResult:
    body: ChargeResult = {"status": outcome.status}
    if outcome.code is not None:
        body["code"] = outcome.code
    if outcome.operation is not None:
        body["operation"] = outcome.operation
    return body


class WalletChargeManyApi(IdempotentApiMixin, APIView):
    """Up to 1,000 charges validated whole, then run in order in one transaction; each item's outcome."""

    permission_classes = (IsAuthenticated, IsCompany)

    def post(self, request):
        charges = bulk_charge_input(request.data)
        result = services.wallet_charge_many(
            merchant=request.user,
            charges=[services.ChargeRequest(item["wallet"], item["amount"], item["summary"]) for item in charges],
        )
        body: BulkChargeOutput = {
            **wallet_body(result.merchant_wallet),
            "results": [outcome_body(outcome) for outcome in result.outcomes],
        }
        return Response(body)
