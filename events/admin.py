"""Support staff's view of webhook endpoints and deliveries: read-only (secrets never shown)."""

from django.contrib import admin

from events.models import WebhookDelivery, WebhookEndpoint
from wallets.admin import ReadOnlyAdmin


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "owner", "url", "created_at", "failing_since", "disabled_at")
    fields = ("public_id", "owner", "url", "event_types", "created_at", "failing_since", "disabled_at")
    readonly_fields = fields
    search_fields = ("=public_id", "owner__email", "url")
    list_select_related = ("owner",)
    ordering = ("-id",)
    show_full_result_count = False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "id", "event_public_id", "endpoint", "status", "attempts", "last_status", "last_error", "next_attempt_at",
        "delivered_at",
    )  # fmt: skip
    fields = (
        "event_public_id", "endpoint", "status", "attempts", "created_at", "last_attempt_at", "next_attempt_at",
        "delivered_at", "last_status", "last_error",
    )  # fmt: skip
    readonly_fields = fields
    list_filter = ("status",)
    search_fields = ("=event__public_id", "=endpoint__public_id", "endpoint__owner__email")
    list_select_related = ("endpoint", "event")
    ordering = ("-id",)
    show_full_result_count = False

    @admin.display(description="event")
    def event_public_id(self, delivery: WebhookDelivery) -> str:
        return delivery.event.public_id
