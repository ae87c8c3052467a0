from events import apis
from events.webhooks import apis as webhook_apis
from wallet_service.api.routing import endpoint

urlpatterns = [
    endpoint("events", apis.EventListApi.as_view(), name="events"),
    endpoint("webhooks", webhook_apis.WebhookListApi.as_view(), name="webhooks"),
    endpoint(r"webhooks/(?P<webhook_id>[^/]+)", webhook_apis.WebhookDetailApi.as_view(), name="webhook"),
]
