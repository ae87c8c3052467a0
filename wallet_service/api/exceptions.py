"""The one exception handler: every error the API returns is an RFC 9457 problem document.

DRF's exceptions, Django's ``Http404``/``PermissionDenied`` and the services' ``ServiceError``s
are mapped to the contract's codes. A database that cannot be reached is a 503, not a 500.
Anything else is a bug and falls through to Django's 500 handler, which also answers with a
problem document (wallet_service/api/views.py).
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.settings import api_settings
from rest_framework.views import set_rollback

from wallet_service.api.errors import FieldError, InvalidValue, ServiceError
from wallet_service.api.problems import problem_response

logger = logging.getLogger(__name__)

# DRF exception class -> contract code. Order matters: subclasses before their bases.
DRF_CODES: tuple[tuple[type[exceptions.APIException], str], ...] = (
    (exceptions.ValidationError, "validation_error"),
    (exceptions.ParseError, "validation_error"),
    (exceptions.NotAuthenticated, "not_authenticated"),
    (exceptions.AuthenticationFailed, "authentication_failed"),
    (exceptions.PermissionDenied, "permission_denied"),
    (exceptions.NotFound, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.Throttled, "throttled"),
)

BODY_FIELD = "body"


def flatten_errors(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as ``{"dotted.field": [messages]}``.

    Errors about a whole object (DRF's ``non_field_errors``) are filed under the object's own
    name, or under ``body`` at the top level.
    """
    flat: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "" if key == api_settings.NON_FIELD_ERRORS_KEY else str(key)
            path = ".".join(part for part in (prefix, name) if part)
            for field, messages in flatten_errors(value, path).items():
                flat.setdefault(field, []).extend(messages)
    elif isinstance(detail, list):
        for index, item in enumerate(detail):
            if isinstance(item, (dict, list)):
                path = ".".join(part for part in (prefix, str(index)) if part)
                for field, messages in flatten_errors(item, path).items():
                    flat.setdefault(field, []).extend(messages)
            else:
                flat.setdefault(prefix or BODY_FIELD, []).append(str(item))
    else:
        flat.setdefault(prefix or BODY_FIELD, []).append(str(detail))
    return flat


def describe_errors(errors: dict[str, list[str]]) -> str:
    """One human sentence for a set of field errors."""
    parts = [f"{field}: {messages[0].rstrip('.')}" for field, messages in errors.items() if messages]
    return "Invalid request. " + "; ".join(parts) + "." if parts else "Invalid request."


def validation_problem(errors: dict[str, list[str]]):
    return problem_response("validation_error", describe_errors(errors), errors=errors)


# SQLSTATEs of a database that is up but could not finish this request: deadlock, serialization
# failure, lock timeout, statement timeout. Anything else from the driver means "cannot reach it".
DATABASE_CONFLICTS = {"40P01", "40001", "55P03", "57014"}


def database_problem(exc: Exception):
    """503 for a database error, logged as what it is: a conflict or timeout, or an outage."""
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    if sqlstate in DATABASE_CONFLICTS or "database is locked" in str(exc):
        logger.error("database conflict or timeout (SQLSTATE %s): %s", sqlstate, exc)
        detail = "The database could not complete the request in time; retry later."
    else:
        logger.error("database unavailable (SQLSTATE %s): %s", sqlstate, exc)
        detail = "The database cannot be reached; retry later."
    return problem_response("service_unavailable", detail, headers={"Retry-After": "1"})


def problem_exception_handler(exc, context):
    if isinstance(exc, InvalidValue):
        field = getattr(context.get("view"), "field_of", {}).get(exc.argument, exc.argument)
        exc = FieldError(field, exc.detail)
    response = _problem_for(exc)
    if response is not None:
        # Only acts under ATOMIC_REQUESTS (not used): a view wrapped in a transaction is rolled back on
        # error. Services that must keep a record of a failure (a failed charge) commit it themselves.
        set_rollback()
    return response


def _problem_for(exc):
    if isinstance(exc, FieldError):
        return validation_problem(exc.errors)
    if isinstance(exc, ServiceError):
        return problem_response(exc.code, exc.detail, headers=exc.headers, extra=exc.extra)
    if isinstance(exc, Http404):
        return problem_response("not_found", "Not found.")
    if isinstance(exc, DjangoPermissionDenied):
        return problem_response("permission_denied", "You do not have permission to perform this action.")
    if isinstance(exc, RequestDataTooBig):
        return problem_response("payload_too_large", "The request body is too large.")
    if isinstance(exc, (OperationalError, InterfaceError)):
        return database_problem(exc)
    if isinstance(exc, exceptions.ValidationError):
        return validation_problem(flatten_errors(exc.detail))
    if isinstance(exc, exceptions.ParseError):
        errors = {BODY_FIELD: [str(exc.detail)]}
        return problem_response("validation_error", str(exc.detail), errors=errors)
    if isinstance(exc, exceptions.APIException):
        code = next((code for cls, code in DRF_CODES if isinstance(exc, cls)), None)
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None) is not None:
            headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
        detail = str(exc.detail) if not isinstance(exc.detail, (list, dict)) else "Request refused."
        if code is None:
            code = "server_error" if exc.status_code >= 500 else "validation_error"
        return problem_response(code, detail, status=exc.status_code, headers=headers)
    return None
