"""The admin site, with its login throttled exactly like the API's (one shared budget per client IP).

``wallet_service.admin_apps.WalletAdminConfig`` replaces ``django.contrib.admin`` in INSTALLED_APPS
so that ``admin.site`` is a ``ThrottledAdminSite``. Every POST to ``/admin/login/`` takes an attempt
from the same database-backed sliding window as ``/client/login`` and ``/company/login``
(``accounts.throttling.take_attempt``, rate ``WALLET_SERVICE_AUTH_THROTTLE_RATE``): shared by every
gunicorn worker and container, and exact under concurrency. Past the limit the password is not even
checked: the login page answers 429 with ``Retry-After`` and says why, for a right password as for
a wrong one.
"""

from __future__ import annotations

import math

from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from rest_framework.throttling import BaseThrottle

from accounts.throttling import take_attempt

THROTTLED_ATTR = "_wallet_admin_login_retry_after"


def client_ident(request) -> str | None:
    """The client IP as the API's throttle sees it (X-Forwarded-For only through WALLET_SERVICE_NUM_PROXIES)."""
    return BaseThrottle().get_ident(request)


class ThrottledAuthenticationForm(AdminAuthenticationForm):
    def clean(self):
        retry_after = take_attempt(client_ident(self.request), "auth")
        if retry_after is not None:
            setattr(self.request, THROTTLED_ATTR, retry_after)
            raise ValidationError(
                "Too many login attempts from your address. Try again in %(seconds)d seconds.",
                code="throttled",
                params={"seconds": max(1, math.ceil(retry_after))},
            )
        return super().clean()


class ThrottledAdminSite(AdminSite):
    login_form = ThrottledAuthenticationForm

    def login(self, request, extra_context=None):
        response = super().login(request, extra_context)
        retry_after = getattr(request, THROTTLED_ATTR, None)
        if retry_after is not None:
            response.status_code = 429
            response["Retry-After"] = str(max(1, math.ceil(retry_after)))
        return response
