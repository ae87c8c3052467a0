"""Business failures of wallet operations, each with its contract code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wallet_service.api.errors import NotFound, ServiceError

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
    """Raised after the failed attempt has been committed to the ledger; ``operation`` is that record."""

    code = "insufficient_funds"
    default_detail = "The charged wallet's balance does not cover the amount."

    def __init__(self, operation: Operation):
        self.operation = operation
        self.extra = {"operation": operation.id}
        super().__init__()
