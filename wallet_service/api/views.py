"""Cross-cutting endpoints: health, problem-type documentation, and Django's error handlers."""

from __future__ import annotations

import json
import logging
from typing import Literal, TypedDict

from django.conf import settings
from django.core.exceptions import DisallowedHost, TooManyFieldsSent
from django.db import connection
from django.http import HttpResponse
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from wallet_service.api.exceptions import describe_errors
from wallet_service.api.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPES, problem_body, problem_response

logger = logging.getLogger(__name__)


class Status(TypedDict):
    status: Literal["ok"]


class ProblemTypeOutput(TypedDict):
    """The documentation of a problem type (the catalogue's entry: ``wallet_service.api.problems``)."""

    type: str
    code: str
    status: int
    title: str
    description: str


class StatusApi(APIView):
    """Liveness and database check: 200 when a query round-trips, 503 otherwise."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    def get(self, request):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        except Exception as error:  # any failure to reach the database means "not ready"
            logger.warning("status check failed: %s", error)
            return problem_response("service_unavailable", "The database cannot be reached.")
        body: Status = {"status": "ok"}
        return Response(body)


class ProblemTypeApi(APIView):
    """Documentation of a problem type, at the URI its ``type`` member names."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    def get(self, request, code: str):
        problem = PROBLEM_TYPES.get(code)
        if problem is None:
            return problem_response("not_found", f"There is no problem type {code!r}.")
        body: ProblemTypeOutput = {
            "type": problem.type_uri,
            "code": problem.code,
            "status": problem.status,
            "title": problem.title,
            "description": problem.description,
        }
        return Response(body)


def _problem_http_response(code: str, detail: str, errors: dict[str, list[str]] | None = None) -> HttpResponse:
    body = problem_body(code, detail, errors=errors)
    return HttpResponse(json.dumps(body), status=body["status"], content_type=PROBLEM_CONTENT_TYPE)


def bad_request(request, exception=None):
    """Django's answer to a request it refuses before any view runs (a SuspiciousOperation).

    A validation_error always says which part of the request is wrong, in ``errors``.
    """
    if isinstance(exception, DisallowedHost):
        errors = {"Host": ["This host is not served here."]}
    elif isinstance(exception, TooManyFieldsSent):
        errors = {"query": [f"At most {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} parameters are accepted."]}
    else:
        errors = {"request": ["The request is malformed."]}
    return _problem_http_response("validation_error", describe_errors(errors), errors)


def permission_denied(request, exception=None):
    return _problem_http_response("permission_denied", "You do not have permission to perform this action.")


def page_not_found(request, exception=None):
    return _problem_http_response("not_found", "Not found.")


def server_error(request):
    return _problem_http_response("server_error", "An unexpected error occurred; it has been logged.")
