"""Request middleware shared by the whole API."""

from __future__ import annotations


class DefaultJSONContentTypeMiddleware:
    """Treat a request body sent without ``Content-Type`` as JSON.

    Without this, DRF silently ignores such a body and the client is told that every field is
    missing, which sends integrators looking in the wrong place. A body with another explicit
    type still gets 415.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        meta = request.META
        if not meta.get("CONTENT_TYPE") and meta.get("CONTENT_LENGTH", "0") not in ("", "0"):
            meta["CONTENT_TYPE"] = "application/json"
        return self.get_response(request)
