"""OpenAPI descriptions of the wallet endpoints (see wallet_service/api/schema.py)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiViewExtension
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from wallet_service.api.schema import (
    IDEMPOTENCY_KEY,
    IDEMPOTENCY_PROBLEMS,
    MONEY_PATTERN,
    document,
    idempotent_replayed,
)
from wallets import apis

TAGS = ("wallets",)


class WalletOutputSerializer(serializers.Serializer):
    wallet = serializers.CharField(help_text="The wallet's token: URL-safe, unguessable, never changes.")
    balance = serializers.RegexField(MONEY_PATTERN, help_text='Two decimals, e.g. "150.00".')


class OperationOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    type = serializers.ChoiceField(choices=["deposit", "charge"])
    summary = serializers.CharField(allow_blank=True)
    source__token = serializers.CharField(allow_null=True, help_text="The charged wallet; null for a deposit.")
    target__token = serializers.CharField(help_text="The wallet that received (or would have received) the money.")
    amount = serializers.RegexField(MONEY_PATTERN)
    success = serializers.BooleanField(help_text="False for a charge refused for insufficient funds.")
    date = serializers.DateTimeField(help_text="When the operation committed, UTC.")


EMPTY_OBJECT = {"type": "object", "description": "`{}`: any JSON object; its members are ignored.", "example": {}}
WALLET_TOKEN = OpenApiParameter("token", str, OpenApiParameter.PATH, description="A wallet token of the caller's.")
WALLET = OpenApiResponse(WalletOutputSerializer, description="The wallet and its balance.")


class WalletCreateSchema(OpenApiViewExtension):
    target_class = apis.WalletCreateApi

    def view_replacement(self):
        return document(
            self.target_class,
            summary="Open a wallet",
            description="A company has at most one wallet; a client at most `WALLET_SERVICE_MAX_WALLETS_BY_CLIENT` "
            "(0 = unlimited). The body is `{}` (or empty).",
            tags=TAGS,
            request={"application/json": EMPTY_OBJECT},
            responses={201: OpenApiResponse(WalletOutputSerializer, description="The new wallet, balance 0.00.")},
            problems=("wallet_limit_reached", *IDEMPOTENCY_PROBLEMS),
            parameters=(IDEMPOTENCY_KEY, idempotent_replayed(201)),
        )


class WalletDepositSchema(OpenApiViewExtension):
    target_class = apis.WalletDepositApi

    def view_replacement(self):
        return document(
            self.target_class,
            summary="Top up one of your wallets",
            description="Adds `amount` to one of the caller's own wallets and records a deposit "
            "(`source__token: null`). Another user's wallet is 404. A deposit that would take the balance "
            "over 999999999999999999.99 is 400 on `amount`.",
            tags=TAGS,
            request=apis.MoneyMovementInputSerializer,
            responses={200: OpenApiResponse(WalletOutputSerializer, description="The wallet and its new balance.")},
            problems=("not_found", *IDEMPOTENCY_PROBLEMS),
            examples=(
                OpenApiExample(
                    "A top-up",
                    {"wallet": "<your wallet token>", "amount": "100.00", "summary": "Top-up"},
                    request_only=True,
                ),
            ),
            parameters=(IDEMPOTENCY_KEY, idempotent_replayed(200)),
        )


class WalletChargeSchema(OpenApiViewExtension):
    target_class = apis.WalletChargeApi

    def view_replacement(self):
        return document(
            self.target_class,
            summary="Charge a wallet (companies)",
            description="Moves `amount` from the wallet `wallet` (any client's or another company's) to the "
            "company's own wallet, in one transaction. When the charged wallet's balance is short nothing "
            "moves, the answer is 402, and the failed attempt is recorded (`success: false`) in the history of "
            "both wallets. Clients get 403; a company without a wallet 409 `merchant_wallet_missing`; an "
            "unknown wallet 404; the company's own wallet 400 `same_wallet`.",
            tags=TAGS,
            request=apis.MoneyMovementInputSerializer,
            responses={
                200: OpenApiResponse(WalletOutputSerializer, description="The company's wallet and its new balance.")
            },
            problems=(
                "same_wallet",
                "insufficient_funds",
                "permission_denied",
                "not_found",
                "merchant_wallet_missing",
                *IDEMPOTENCY_PROBLEMS,
            ),
            parameters=(IDEMPOTENCY_KEY, idempotent_replayed(200, 402)),
            examples=(
                OpenApiExample(
                    "An order",
                    {"wallet": "<the wallet to charge>", "amount": "25.00", "summary": "Order 1234"},
                    request_only=True,
                ),
            ),
        )


class WalletInfoSchema(OpenApiViewExtension):
    target_class = apis.WalletInfoApi

    def view_replacement(self):
        return document(
            self.target_class,
            summary="One of your wallets",
            description="Another user's wallet is 404, like one that does not exist.",
            tags=TAGS,
            responses={200: WALLET},
            problems=("not_found",),
            parameters=(WALLET_TOKEN,),
        )


class WalletListSchema(OpenApiViewExtension):
    target_class = apis.WalletListApi

    def view_replacement(self):
        return document(
            self.target_class,
            summary="Your wallets, oldest first",
            tags=TAGS,
            responses={200: OpenApiResponse(WalletOutputSerializer(many=True), description="The caller's wallets.")},
        )


class WalletHistorySchema(OpenApiViewExtension):
    target_class = apis.WalletHistoryApi

    def view_replacement(self):
        instant = {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]}
        return document(
            self.target_class,
            summary="The operations of one of your wallets, newest first",
            description="Every deposit into the wallet, every charge to or from it, and every failed charge "
            "attempt against it or by it. Keyset-paginated: when more items exist, the `Link` header holds "
            "the next page's URL; following `next` links visits every operation that existed when the first "
            "page was read exactly once.",
            tags=TAGS,
            responses={
                200: OpenApiResponse(OperationOutputSerializer(many=True), description="One page of operations.")
            },
            problems=("validation_error", "not_found"),
            parameters=(
                WALLET_TOKEN,
                OpenApiParameter(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": apis.HISTORY_MAX_LIMIT},
                    description=f"Items per page (default {apis.HISTORY_DEFAULT_LIMIT}).",
                ),
                OpenApiParameter(
                    "from",
                    instant,
                    description="Only operations at or after this instant: an ISO 8601 date-time (UTC when it "
                    "has no zone) or a date (midnight UTC). Must not be later than `to`.",
                ),
                OpenApiParameter("to", instant, description="Only operations before this instant (same forms)."),
                OpenApiParameter(
                    "cursor",
                    {"type": "string", "minLength": 1},
                    description="Opaque; only as found in a `Link` header's next URL (any other value is 400).",
                ),
                OpenApiParameter(
                    "Link",
                    str,
                    OpenApiParameter.HEADER,
                    response=[200],
                    description='`<absolute URL of the next page>; rel="next"` (RFC 8288), present when more '
                    "items exist. The URL keeps `limit`, `from` and `to` and adds `cursor`.",
                ),
            ),
        )
