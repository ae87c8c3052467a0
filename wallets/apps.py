from django.apps import AppConfig


class WalletsConfig(AppConfig):
    name = "wallets"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from wallets import schema  # noqa: F401  (registers the OpenAPI descriptions of the views)
