"""Request middleware shared by the whole API."""

from __future__ import annotations

import logging
import re
from time import perf_counter

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
        started = perf_counter()
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        if not response.has_header("Cache-Control"):
            response["Cache-Control"] = "no-store"
        duration_ms = round((perf_counter() - started) * 1000, 3)
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


class RequestMetrics(prometheus.Metrics):
    """django_prometheus's request metrics, only those docs/OPERATIONS.md documents (same names, labels, buckets).

    django_prometheus's two middlewares write sixteen samples per request to the multiprocess files,
    twelve of them for metrics no dashboard or alert reads (requests before middlewares, by transport,
    by view and transport, body sizes, by status alone, by charset...). These are the four kept.
    """

    KEPT = frozenset(
        {
            "django_http_requests_total_by_method",
            "django_http_responses_total_by_status_view_method",
            "django_http_requests_latency_seconds_by_view_method",
            "django_http_exceptions_total_by_type",
        }
    )

    def register_metric(self, metric_cls, name, documentation, labelnames=(), **kwargs):
        if name not in self.KEPT:
            return None
        return super().register_metric(metric_cls, name, documentation, labelnames=labelnames, **kwargs)


class RequestMetricsMiddleware:
    """Counts each request by method, its response by status, view and method, its latency by view and
    method (every middleware included: this one is outermost), and the exceptions views raise by type.

    Each metric's child for a set of label values is looked up once (``labels()`` is a check of the
    names, a tuple of ``str()`` values and a lock). A method outside HTTP's is labelled
    ``<invalid method>``, a request no view answered ``<unnamed view>``, as django_prometheus does.
    """

    METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT", "PATCH"})

    def __init__(self, get_response):
        self.get_response = get_response
        self.metrics = RequestMetrics.get_instance()
        self.children = {}

    def child(self, metric, *values):
        key = (metric, values)
        found = self.children.get(key)
        if found is None:
            found = self.children[key] = metric.labels(*values)
        return found

    def __call__(self, request):
        started = perf_counter()
        metrics = self.metrics
        method = request.method if request.method in self.METHODS else "<invalid method>"
        self.child(metrics.requests_by_method, method).inc()
        response = self.get_response(request)
        match = request.resolver_match
        view = (match.view_name if match is not None else None) or "<unnamed view>"
        self.child(metrics.responses_by_status_view_method, str(response.status_code), view, method).inc()
        self.child(metrics.requests_latency_by_view_method, view, method).observe(perf_counter() - started)
        return response

    def process_exception(self, request, exception):
        self.child(self.metrics.exceptions_by_type, type(exception).__name__).inc()


def forget_request_id(**kwargs) -> None:
    logs.set_request_id(None)


request_finished.connect(forget_request_id, dispatch_uid="wallet_service.forget_request_id")


# A path segment long enough to be a wallet token (or any other opaque credential-like id): its first six
# characters are kept, to recognise it, and the rest cut. Matched or not, every path is redacted the same way.
TOKEN_SEGMENT_RE = re.compile(r"(?<=/)([A-Za-z0-9_-]{6})[A-Za-z0-9_-]{10,}(?=/|$)")


def logged_path(request) -> str:
    """The request's path with anything that may be a wallet token shortened to a recognisable prefix."""
    return TOKEN_SEGMENT_RE.sub(r"\1...", request.path)
