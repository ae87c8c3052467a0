from events import apis
from wallet_service.api.routing import endpoint

urlpatterns = [
    endpoint("events", apis.EventListApi.as_view(), name="events"),
]
