"""OpenAPI descriptions of the wallet endpoints (see wallet_service/api/schema.py)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiViewExtension
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse

from wallet_service.api.schema import (
    IDEMPOTENCY_KEY,
    IDEMPOTENCY_PROBLEMS,
    LIMIT,
    document,
    idempotent_replayed,
    next_link_header,
)
from wallet_service.api.shapes import serializer_for
from wallets import apis
from wallets.items import HoldOutput, OperationOutput

TAGS = ("wallets",)
WALLET_OUTPUT = serializer_for(apis.WalletOutput)


CURSOR = OpenApiParameter(
    "cursor",
    {"type": "string", "minLength": 1},
    description="Opaque; only as found in a `Link` header's next URL, for an hour (any other value is 400).",
)


EMPTY_OBJECT = {"type": "object", "description": "`{}`: any JSON object; its members are ignored.", "example": {}}
WALLET_TOKEN = OpenApiParameter("token", str, OpenApiParameter.PATH, description="A wallet token of the caller's.")
WALLET = OpenApiResponse(WALLET_OUTPUT, description="The wallet and its balance.")


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
            responses={201: OpenApiResponse(WALLET_OUTPUT, description="The new wallet, balance 0.00.")},
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
            responses={200: OpenApiResponse(WALLET_OUTPUT, description="The wallet and its new balance.")},
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
                200: OpenApiResponse(
                    serializer_for(apis.ChargeOutput), description="The company's wallet and its new balance."
                )
            },
            problems=(
                "same_wallet",
                "insufficient_funds",
                "permission_denied",
                "not_found",
                "merchant_wallet_missing",
                "throttled",
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
            description="Keyset-paginated: when more wallets exist, the `Link` header holds the next page's URL.",
            tags=TAGS,
            responses={200: OpenApiResponse(WALLET_OUTPUT(many=True), description="The caller's wallets.")},
            problems=("validation_error",),
            parameters=(LIMIT, CURSOR, next_link_header(("limit",))),
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
                200: OpenApiResponse(serializer_for(OperationOutput)(many=True), description="One page of operations.")
            },
            problems=("validation_error", "not_found"),
            parameters=(
                WALLET_TOKEN,
                LIMIT,
                OpenApiParameter(
                    "from",
                    instant,
                    description="Only operations at or after this instant: an ISO 8601 date-time (UTC when it "
                    "has no zone) or a date (midnight UTC). Must not be later than `to`.",
                ),
                OpenApiParameter("to", instant, description="Only operations before this instant (same forms)."),
                CURSOR,
                next_link_header(("limit", "from", "to")),
            ),
        )


HOLD = OpenApiResponse(serializer_for(HoldOutput), description="The hold.")
HOLD_ID = OpenApiParameter("hold_id", str, OpenApiParameter.PATH, description="A hold placed by the caller.")
COMPANY_PROBLEMS = ("permission_denied",)


class WalletHoldCreateSchema(OpenApiViewExtension):
    target_class = apis.WalletHoldCreateApi

    def view_replacement(self):
        return document(
            self.target_class,
            summary="Reserve money in a wallet (companies)",
            description="Reserves `amount` of the wallet's `available` for the company, until `expires_in` seconds "
            "from now (1-2592000, default 604800). Nothing moves yet: capture it, or void it. The checks and their "
            "order are a charge's; when `available` is short nothing is reserved, the answer is 402 and a failed "
            "`hold` operation is recorded in both histories.",
            tags=TAGS,
            request=apis.HoldCreateInputSerializer,
            responses={201: HOLD},
            problems=(
                "same_wallet",
                "insufficient_funds",
                "not_found",
                "merchant_wallet_missing",
                "throttled",
                *COMPANY_PROBLEMS,
                *IDEMPOTENCY_PROBLEMS,
            ),
            parameters=(IDEMPOTENCY_KEY, idempotent_replayed(201, 402)),
            examples=(
                OpenApiExample(
                    "An order to ship later",
                    {"wallet": "<the wallet to hold>", "amount": "25.00", "summary": "Order 1234", "expires_in": 3600},
                    request_only=True,
                ),
            ),
        )


class WalletHoldDetailSchema(OpenApiViewExtension):
    target_class = apis.WalletHoldDetailApi

    def view_replacement(self):
        return document(
            self.target_class,
            summary="One of your holds (companies)",
            operation_id="walletHoldGet",
            description="A hold placed by another company is 404.",
            tags=TAGS,
            responses={200: HOLD},
            problems=("not_found", *COMPANY_PROBLEMS),
            parameters=(HOLD_ID,),
        )


class WalletHoldCaptureSchema(OpenApiViewExtension):
    target_class = apis.WalletHoldCaptureApi

    def view_replacement(self):
        return document(
            self.target_class,
            summary="Take held money (companies)",
            description="Moves `amount` (default: all that remains) from the held wallet to the company's, recorded "
            "as a `capture` in both histories. `final: true` (the default) releases the rest and resolves the hold; "
            "`final: false` keeps it pending for later captures. Never 402: the money was reserved. An `amount` "
            "above `remaining` is 400; a hold no longer pending is 409 `hold_not_pending`.",
            tags=TAGS,
            request=apis.HoldCaptureInputSerializer,
            responses={200: HOLD},
            problems=("not_found", "hold_not_pending", *COMPANY_PROBLEMS, *IDEMPOTENCY_PROBLEMS),
            parameters=(HOLD_ID, IDEMPOTENCY_KEY, idempotent_replayed(200)),
        )


class WalletHoldVoidSchema(OpenApiViewExtension):
    target_class = apis.WalletHoldVoidApi

    def view_replacement(self):
        return document(
            self.target_class,
            summary="Release a hold (companies)",
            description="Releases what the hold still reserves; nothing moves. The body is `{}`.",
            tags=TAGS,
            request={"application/json": EMPTY_OBJECT},
            responses={200: HOLD},
            problems=("not_found", "hold_not_pending", *COMPANY_PROBLEMS, *IDEMPOTENCY_PROBLEMS),
            parameters=(HOLD_ID, IDEMPOTENCY_KEY, idempotent_replayed(200)),
        )


class WalletRefundSchema(OpenApiViewExtension):
    target_class = apis.WalletRefundApi

    def view_replacement(self):
        return document(
            self.target_class,
            summary="Give money back (companies)",
            description="Moves `amount` (default: what is left to refund) of a successful charge or capture into "
            "the company's wallet back to the wallet that paid, from the company's `available`; recorded as a "
            "`refund` with `refund_of` in both histories. Several partial refunds may add up to the operation's "
            "amount. An unknown operation, or one not involving the company's wallet, is 404; another kind of "
            "operation of its wallet is 400 on `operation`; an amount beyond what is left is 400 on `amount`; a "
            "short `available` is 402, and nothing is recorded.",
            tags=TAGS,
            request=apis.RefundInputSerializer,
            responses={
                200: OpenApiResponse(
                    serializer_for(apis.RefundOutput), description="The refund and the company's wallet."
                )
            },
            problems=("insufficient_funds", "not_found", *COMPANY_PROBLEMS, *IDEMPOTENCY_PROBLEMS),
            parameters=(IDEMPOTENCY_KEY, idempotent_replayed(200)),
            examples=(
                OpenApiExample(
                    "A returned item",
                    {"operation": 17, "amount": "5.00", "summary": "Returned item"},
                    request_only=True,
                ),
            ),
        )


class WalletChargeManySchema(OpenApiViewExtension):
    target_class = apis.WalletChargeManyApi

    def view_replacement(self):
        return document(
            self.target_class,
            summary="Charge many wallets at once (companies)",
            description="1 to 1000 charges, each shaped as a `/wallet/charge` body. The whole body is validated "
            "first (errors named `charges.<index>.<field>`; nothing runs). Then every item is a charge as if sent "
            "alone, in order (items charging the same wallet see each other's effects), all in one transaction: "
            "after a crash either every item's outcome is in the ledger or none is. An `Idempotency-Key` replays "
            "the whole answer.",
            tags=TAGS,
            request=apis.BulkChargeInputSerializer,
            responses={
                200: OpenApiResponse(
                    serializer_for(apis.BulkChargeOutput), description="The company's wallet and each outcome."
                )
            },
            problems=("permission_denied", "merchant_wallet_missing", *IDEMPOTENCY_PROBLEMS),
            parameters=(IDEMPOTENCY_KEY, idempotent_replayed(200)),
            examples=(
                OpenApiExample(
                    "A month's subscriptions",
                    {"charges": [{"wallet": "<a wallet token>", "amount": "9.99", "summary": "May subscription"}]},
                    request_only=True,
                ),
            ),
        )
