from wallet_service.api.routing import WALLET_TOKEN_PATTERN, endpoint
from wallets import apis

HOLD_ID_PATTERN = r"(?P<hold_id>[^/]+)"

urlpatterns = [
    # The most frequent first: Django tries the patterns in order (wallet_service/urls.py).
    endpoint("wallet/charge", apis.WalletChargeApi.as_view(), name="wallet-charge"),
    endpoint(f"wallet/info/{WALLET_TOKEN_PATTERN}", apis.WalletInfoApi.as_view(), name="wallet-info"),
    endpoint("wallet/deposit", apis.WalletDepositApi.as_view(), name="wallet-deposit"),
    endpoint("wallet/create", apis.WalletCreateApi.as_view(), name="wallet-create"),
    endpoint("wallet/charges", apis.WalletChargeManyApi.as_view(), name="wallet-charges"),
    endpoint("wallet/list", apis.WalletListApi.as_view(), name="wallet-list"),
    endpoint(f"wallet/history/{WALLET_TOKEN_PATTERN}", apis.WalletHistoryApi.as_view(), name="wallet-history"),
    endpoint("wallet/hold", apis.WalletHoldCreateApi.as_view(), name="wallet-hold"),
    endpoint(f"wallet/hold/{HOLD_ID_PATTERN}", apis.WalletHoldDetailApi.as_view(), name="wallet-hold-detail"),
    endpoint(f"wallet/hold/{HOLD_ID_PATTERN}/capture", apis.WalletHoldCaptureApi.as_view(), name="wallet-hold-capture"),
    endpoint(f"wallet/hold/{HOLD_ID_PATTERN}/void", apis.WalletHoldVoidApi.as_view(), name="wallet-hold-void"),
    endpoint("wallet/refund", apis.WalletRefundApi.as_view(), name="wallet-refund"),
]
