"""Business failures of wallet operations, each with its contract code."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from wallet_service.api.errors import FieldError, NotFound, ServiceError

if TYPE_CHECKING:
    from wallets.models import Operation


class WalletNotFound(NotFound):
    default_detail = "Wallet not found."


class WalletLimitReached(ServiceError):
    code = "wallet_limit_reached"
    default_detail = "This account already has as many wallets as it may have."


class MerchantWalletMissing(ServiceError):
    code = "merchant_wallet_missing"
    default_detail = "Create your company's wallet before charging."


class SameWallet(ServiceError):
    code = "same_wallet"
    default_detail = "A company cannot charge its own wallet."


class InsufficientFunds(ServiceError):
    """A charge or hold: raised after the failed attempt has been committed to the ledger, and
    ``operation`` is that record. A refund: nothing is recorded, ``operation`` is None."""

    code = "insufficient_funds"
    default_detail = "The charged wallet's available balance does not cover the amount."

    def __init__(self, operation: Operation | None):
        self.operation = operation
        if operation is None:
            super().__init__("Your wallet's available balance does not cover the refund. Nothing moved.")
        else:
            self.extra = {"operation": operation.id}
            super().__init__()


class HoldNotFound(NotFound):
    default_detail = "Hold not found."


class HoldNotPending(ServiceError):
    code = "hold_not_pending"
    default_detail = "This hold is already captured, voided or expired."


class OperationNotFound(NotFound):
    default_detail = "Operation not found."


class NotRefundable(FieldError):
    def __init__(self):
        super().__init__("operation", "Only a successful charge or capture into your wallet can be refunded.")


class AmountAboveRemaining(FieldError):
    def __init__(self, remaining: Decimal):
        super().__init__("amount", f"At most what the hold still reserves can be captured: {remaining}.")


class AmountAboveRefundable(FieldError):
    def __init__(self, left: Decimal):
        message = (
            f"At most what is left to refund of this operation can be refunded: {left}."
            if left
            else "Nothing is left to refund of this operation."
        )
        super().__init__("amount", message)


class TooManyRefusedAttempts(ServiceError):
    """A company's charges or holds on one wallet were refused for insufficient funds too often lately.

    Without this, a company that knows a wallet's token could fill its history with failed charges, or
    find its balance by bisection (each refused attempt says "less than this"). Nothing is recorded.
    """

    code = "throttled"
    default_detail = (
        "Too many charges or holds on this wallet were refused for insufficient funds in the last hour; "
        "try again later."
    )

    def __init__(self, retry_after: int):
        self.headers = {"Retry-After": str(retry_after)}
        super().__init__()
