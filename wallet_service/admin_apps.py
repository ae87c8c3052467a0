"""django.contrib.admin with ``admin.site`` a ThrottledAdminSite (wallet_service/admin_site.py).

Its own module: INSTALLED_APPS imports it before any model can be, and admin_site.py imports forms.
"""

from django.contrib.admin.apps import AdminConfig


class WalletAdminConfig(AdminConfig):
    default_site = "wallet_service.admin_site.ThrottledAdminSite"
