from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.negotiation import DefaultContentNegotiation

from wallet_service.api.metrics import metrics_view
from wallet_service.api.routing import endpoint
from wallet_service.api.views import ProblemTypeApi, StatusApi

# Django tries the patterns in order until one matches, and an include that does not costs an exception: the
# wallet endpoints, most of the traffic, come first (no two patterns here match the same path).
urlpatterns = [
    path("", include("wallets.urls")),
    endpoint("status", StatusApi.as_view(), name="status"),
    endpoint("metrics", metrics_view, name="metrics"),
    # The schema in YAML, or JSON for `Accept: application/vnd.oai.openapi+json` (or application/json).
    endpoint("schema", SpectacularAPIView.as_view(content_negotiation_class=DefaultContentNegotiation), name="schema"),
    endpoint("docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    endpoint(r"problems/(?P<code>[a-z_]{1,64})", ProblemTypeApi.as_view(), name="problem-type"),
    path("", include("accounts.urls")),
    path("", include("events.urls")),
]

# WALLET_SERVICE_ADMIN_ENABLED=False: /admin/ is not routed at all (404, like any unknown path).
if settings.WALLET_SERVICE_ADMIN_ENABLED:
    urlpatterns.insert(0, path("admin/", admin.site.urls))

handler400 = "wallet_service.api.views.bad_request"
handler403 = "wallet_service.api.views.permission_denied"
handler404 = "wallet_service.api.views.page_not_found"
handler500 = "wallet_service.api.views.server_error"
