from django.apps import AppConfig


class WalletServiceConfig(AppConfig):
    """The project package as an app, so that its system checks (wallet_service/checks.py) are registered."""

    name = "wallet_service"
    verbose_name = "Wallet service"

    def ready(self) -> None:
        from wallet_service import checks  # noqa: F401  (registers the checks)
