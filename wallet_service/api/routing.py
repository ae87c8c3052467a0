"""URL helper: every contract path answers with and without a trailing slash, with no redirect."""

from __future__ import annotations

from django.urls import re_path

# Any path segment routes to the view, so that authentication is checked before "not found".
WALLET_TOKEN_PATTERN = r"(?P<token>[^/]+)"


def endpoint(path: str, view, name: str):
    """``path`` is a regex fragment without slashes at either end, e.g. ``wallet/list``."""
    return re_path(rf"^{path}/?$", view, name=name)
