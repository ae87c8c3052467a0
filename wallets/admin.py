"""Support staff's view of wallets and the ledger: searchable, strictly read-only.

Money only moves through wallets.services, under locks and with a ledger entry; the admin can
look but never add, change or delete a wallet or an operation.
"""

from django.contrib import admin

from wallets.models import Hold, Operation, Wallet


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Wallet)
class WalletAdmin(ReadOnlyAdmin):
    list_display = ("token", "owner", "current_balance", "created_at")
    fields = ("token", "owner", "current_balance", "balance", "created_at")
    readonly_fields = fields
    search_fields = ("=token", "owner__email")
    list_select_related = ("owner",)
    ordering = ("-id",)
    show_full_result_count = False

    def get_queryset(self, request):
        return super().get_queryset(request).with_current_balance()

    @admin.display(description="balance (with pending credits)")
    def current_balance(self, wallet: Wallet):
        return wallet.current_balance


@admin.register(Operation)
class OperationAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "source", "target", "amount", "success", "summary", "created_at")
    list_filter = ("kind", "success")
    search_fields = (
        "=source__token", "=target__token", "=hold__public_id", "source__owner__email", "target__owner__email"
    )  # fmt: skip
    list_select_related = ("source", "target")
    ordering = ("-id",)
    show_full_result_count = False


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    """Holds are resolved only through the API (capture, void) or by expiry: here they are read."""

    list_display = ("public_id", "wallet", "merchant_wallet", "amount", "captured", "status", "expires_at")
    list_filter = ("status",)
    search_fields = ("=public_id", "=wallet__token", "=merchant_wallet__token")
    list_select_related = ("wallet", "merchant_wallet")
    ordering = ("-id",)
    show_full_result_count = False
