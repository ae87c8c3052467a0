"""Request middleware shared by the whole API."""

from __future__ import annotations

import logging
import re
import time

from django.core.handlers.exception import convert_exception_to_response
from django.core.signals import request_finished
from django.utils.module_loading import import_string
from django_prometheus import middleware as prometheus

from wallet_service import logs

request_logger = logging.getLogger("wallet_service.request")


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


class AdminOnlyMiddleware:
    """Run ``settings.WALLET_SERVICE_ADMIN_MIDDLEWARE`` (sessions, CSRF, the session's user, messages) for
    ``/admin/`` only.

    The API authenticates every request by its ``Authorization`` key and never reads a cookie, a
    session or a message; the admin needs all four. Listed in ``MIDDLEWARE`` they cost every API
    request their work and a layer of the middleware chain each (bench/instructions.py); here they
    are one chain, entered only for the admin's paths. Their ``process_view`` hooks (CSRF's check)
    are called from this middleware's, for the admin's paths, where Django would have called them.
    """

    PREFIX = "/admin/"

    def __init__(self, get_response):
        from django.conf import settings

        self.get_response = get_response
        handler = get_response
        self.view_hooks = []
        for path in reversed(settings.WALLET_SERVICE_ADMIN_MIDDLEWARE):
            middleware = import_string(path)(handler)
            if hasattr(middleware, "process_view"):
                self.view_hooks.insert(0, middleware.process_view)
            handler = convert_exception_to_response(middleware)
        self.admin_chain = handler

    def is_admin(self, request) -> bool:
        path = request.path_info
        return path.startswith(self.PREFIX) or path == self.PREFIX[:-1]

    def __call__(self, request):
        if self.is_admin(request):
            return self.admin_chain(request)
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not self.is_admin(request):
            return None
        for hook in self.view_hooks:
            response = hook(request, view_func, view_args, view_kwargs)
            if response is not None:
                return response
        return None


class RequestLogMiddleware:
    """Give each request an id, answer it in ``X-Request-ID``, and log one JSON line per request.

    The id is the incoming ``X-Request-ID`` when it is a plausible id (see
    ``wallet_service.logs.REQUEST_ID_RE``), else a new one; every record logged while the request
    is served carries it. The request line (logger ``wallet_service.request``) has ``method``,
    ``path``, ``status`` and ``duration_ms``. It is at INFO, at ERROR for a 5xx, and at DEBUG for
    successful health and metrics scrapes, which would otherwise drown everything else. A wallet
    token in the path is cut to its first characters: with it, any company could charge the wallet.

    Every response not already given a caching policy (static files have theirs) gets
    ``Cache-Control: no-store``: balances, histories and tokens must not be kept by a browser or a
    shared proxy cache.
    """

    QUIET_PATHS = ("/status", "/status/", "/metrics", "/metrics/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = logs.accept_request_id(request.META.get("HTTP_X_REQUEST_ID"))
        # Kept until the response is closed (request_finished), not only until this returns: Django
        # logs 4xx and 5xx responses (logger django.request) after the middleware chain.
        logs.set_request_id(request_id)
        started = time.perf_counter()
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        if not response.has_header("Cache-Control"):
            response["Cache-Control"] = "no-store"
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        status = response.status_code
        if status >= 500:
            level = logging.ERROR
        elif status < 400 and request.path in self.QUIET_PATHS:
            level = logging.DEBUG
        else:
            level = logging.INFO
        path = logged_path(request)
        request_logger.log(
            level,
            "%s %s %s",
            request.method,
            path,
            status,
            extra={"method": request.method, "path": path, "status": status, "duration_ms": duration_ms},
        )
        return response


class PrometheusAfterMiddleware(prometheus.PrometheusAfterMiddleware):
    """django_prometheus's, with each metric's child for a set of label values looked up once.

    Its ``label_metric`` calls ``metric.labels(...)`` about eight times per request, each a check of
    the label names, a tuple of ``str()`` values and a lock; the children are the same every time
    for the same values, so they are kept here (as many as the metric keeps itself: one per set of
    values) and the samples written are unchanged.
    """

    def __init__(self, get_response):
        super().__init__(get_response)
        self.children = {}

    def label_metric(self, metric, request, response=None, **labels):
        if not labels:
            return metric
        key = (metric, *labels.items())
        child = self.children.get(key)
        if child is None:
            child = self.children[key] = metric.labels(**labels)
        return child


def forget_request_id(**kwargs) -> None:
    logs.set_request_id(None)


request_finished.connect(forget_request_id, dispatch_uid="wallet_service.forget_request_id")


# A path segment long enough to be a wallet token (or any other opaque credential-like id): its first six
# characters are kept, to recognise it, and the rest cut. Matched or not, every path is redacted the same way.
TOKEN_SEGMENT_RE = re.compile(r"(?<=/)([A-Za-z0-9_-]{6})[A-Za-z0-9_-]{10,}(?=/|$)")


def logged_path(request) -> str:
    """The request's path with anything that may be a wallet token shortened to a recognisable prefix."""
    return TOKEN_SEGMENT_RE.sub(r"\1...", request.path)
