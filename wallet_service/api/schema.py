"""The OpenAPI schema (drf-spectacular): what every operation shares.

Each app describes its own views in its ``schema.py`` (OpenApiViewExtensions, so that views stay
plain) through ``document()``. This module holds the rest, derived from the code it describes:

- one component per problem type of ``PROBLEM_TYPES``, with its ``code``, ``type``, ``title``
  and ``status`` as constants, so a client can branch on ``code`` from the schema alone;
- the problem responses a view gets from its own configuration: 401 when it requires a key, 429
  when it is throttled, 400/413/415 when it reads a JSON body, 503 when it uses the database;
- the ``Authorization: Token <key>`` scheme and the amount field (string or number, > 0, at most
  two decimals, at most ``MAX_AMOUNT``), with ``Decimal`` limits so the schema says exactly what
  the server accepts;
- the canonical paths: every path also answers with a trailing slash, documented once without.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerFieldExtension,
    OpenApiViewExtension,
)
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated

from wallet_service.api.fields import MAX_AMOUNT, MONEY_QUANTUM
from wallet_service.api.pagination import PAGE_DEFAULT_LIMIT, PAGE_MAX_LIMIT
from wallet_service.api.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPES

# A positive amount with at most two decimals, up to MAX_AMOUNT (1000000000.00), as the contract
# writes it: digits, optionally a point and one or two digits, leading zeros allowed.
AMOUNT_PATTERN = r"^(0*[1-9][0-9]{0,8}(\.[0-9]{1,2})?|0+\.(0[1-9]|[1-9][0-9]?)|0*1000000000(\.0{1,2})?)$"
MONEY_PATTERN = r"^[0-9]+\.[0-9]{2}$"
PHONE_PATTERN = r"^\+[1-9][0-9]{6,14}$"
URL_PATTERN = r"^(https?|ftps?)://[^\s/?#]+([/?#]\S*)?$"
# DRF trims these fields before checking that they are not blank: a value must hold a non-space.
NON_BLANK_PATTERN = r"\S"

# 1 to 255 printable ASCII characters. HTTP strips spaces at either end of a header value, so a
# key must begin and end with a visible character.
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]([ -~]{0,253}[!-~])?$"
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    pattern=IDEMPOTENCY_KEY_PATTERN,
    description=(
        "Makes the request safe to retry: 1 to 255 printable ASCII characters, scoped to the "
        "authenticated user and kept at least 24 hours. The first request with a key is executed; "
        "if it was executed (a 2xx, or the 402 of a recorded failed charge) a repeat with the same "
        "method, path and body (compared as parsed JSON) gets the stored status and body again with "
        "`Idempotent-Replayed: true` and moves no money. A request refused before execution stores "
        "nothing and may be retried with the key. The same key with another method, path or body "
        "gets `422 idempotency_key_reused`; a repeat while the first is still running gets "
        "`409 idempotency_key_in_use`; a malformed key gets `400 validation_error`."
    ),
)


def idempotent_replayed(*statuses: int) -> OpenApiParameter:
    """The header on the responses a key can replay (those of executed requests)."""
    return OpenApiParameter(
        "Idempotent-Replayed",
        str,
        OpenApiParameter.HEADER,
        enum=["true"],
        response=list(statuses),
        description="`true` when this is the stored response of an earlier request with the same `Idempotency-Key`.",
    )


LIMIT = OpenApiParameter(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": PAGE_MAX_LIMIT, "default": PAGE_DEFAULT_LIMIT},
    description=f"Items per page (default {PAGE_DEFAULT_LIMIT}).",
)


def next_link_header(kept: tuple[str, ...], parameter: str = "cursor") -> OpenApiParameter:
    names = ", ".join(f"`{name}`" for name in kept)
    return OpenApiParameter(
        "Link",
        str,
        OpenApiParameter.HEADER,
        response=[200],
        description=f'`<absolute URL of the next page>; rel="next"` (RFC 8288), present when more items exist. '
        f"The URL keeps {names} and adds `{parameter}`.",
    )


IDEMPOTENCY_PROBLEMS = ("validation_error", "idempotency_key_in_use", "idempotency_key_reused")

# Headers that come with a problem, by status (RFC 9110 and the contract).
PROBLEM_HEADERS = {
    401: {"WWW-Authenticate": "`Token`: send `Authorization: Token <key>`."},
    409: {"Retry-After": "With `idempotency_key_in_use`: seconds to wait before retrying with the same key."},
    429: {"Retry-After": "Seconds to wait before the next attempt."},
    503: {"Retry-After": "Seconds to wait before retrying, when the database is busy rather than down."},
}


def problem_component_name(code: str) -> str:
    return "Problem" + "".join(part.capitalize() for part in code.split("_"))


def problem_component(code: str) -> dict:
    problem = PROBLEM_TYPES[code]
    schema = {
        "type": "object",
        "title": problem.title,
        "description": f"`{code}`: {problem.description}",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {"type": "string", "enum": [problem.type_uri], "description": "URI of the problem type."},
            "title": {"type": "string", "enum": [problem.title]},
            "status": {"type": "integer", "enum": [problem.status]},
            "detail": {"type": "string", "description": "A human sentence about this occurrence."},
            "code": {"type": "string", "enum": [code], "description": "Stable code to branch on."},
        },
    }
    if code == "validation_error":
        schema["required"].append("errors")
        schema["properties"]["errors"] = {
            "type": "object",
            "description": "Messages per field; nested fields are dotted (`client.phone_number`), "
            "the body as a whole is `body`.",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        }
    if code == "insufficient_funds":
        schema["properties"]["operation"] = {
            "type": "integer",
            "description": "The recorded failed operation's `id` in the history (when one was recorded).",
        }
    return schema


def problem_responses(codes) -> dict:
    """``{(status, problem+json): OpenApiResponse}`` for these codes, grouped by status."""
    by_status: dict[int, list[str]] = defaultdict(list)
    for code in codes:
        if code not in by_status[PROBLEM_TYPES[code].status]:
            by_status[PROBLEM_TYPES[code].status].append(code)
    responses = {}
    for status, status_codes in sorted(by_status.items()):
        refs = [{"$ref": f"#/components/schemas/{problem_component_name(code)}"} for code in status_codes]
        description = "\n".join(f"- `{code}`: {PROBLEM_TYPES[code].description}" for code in status_codes)
        responses[(status, PROBLEM_CONTENT_TYPE)] = OpenApiResponse(
            response=refs[0] if len(refs) == 1 else {"oneOf": refs}, description=description
        )
    return responses


def problem_headers(codes) -> list[OpenApiParameter]:
    statuses = sorted({PROBLEM_TYPES[code].status for code in codes})
    if not any(code == "idempotency_key_in_use" for code in codes):
        statuses = [status for status in statuses if status != 409]
    return [
        OpenApiParameter(name, str, OpenApiParameter.HEADER, response=[status], description=description)
        for status in statuses
        for name, description in PROBLEM_HEADERS.get(status, {}).items()
    ]


def document(
    view,
    *,
    summary: str,
    description: str = "",
    tags: tuple[str, ...],
    request=None,
    responses: dict,
    problems: tuple[str, ...] = (),
    parameters: tuple[OpenApiParameter, ...] = (),
    examples: tuple[OpenApiExample, ...] = (),
    database: bool = True,
    operation_id: str | None = None,
):
    """``view`` subclassed with its schema: its own responses and problems, and those its
    configuration implies (401 if it requires a key, 429 if throttled, 400/413/415 if it reads a
    body, 503 if it uses the database)."""
    codes = list(problems)
    if request is not None:
        codes += ["validation_error", "payload_too_large", "unsupported_media_type"]
    if any(issubclass(permission, IsAuthenticated) for permission in view.permission_classes):
        codes += ["not_authenticated", "authentication_failed"]
    if view.throttle_classes:
        codes.append("throttled")
    if database:
        codes.append("service_unavailable")
    codes = sorted(set(codes), key=lambda code: (PROBLEM_TYPES[code].status, list(PROBLEM_TYPES).index(code)))
    decorator = extend_schema(
        summary=summary,
        description=description,
        tags=list(tags),
        request=request,
        responses={**responses, **problem_responses(codes)},
        parameters=[*parameters, *problem_headers(codes)],
        examples=list(examples),
    )
    attributes = {"__doc__": view.__doc__, "__module__": view.__module__, "schema_operation_id": operation_id}
    return decorator(type(view.__name__, (view,), attributes))


class AutoSchema(SpectacularAutoSchema):
    def get_operation_id(self):
        """``walletCharge`` for ``/wallet/charge``: the path's words, parameters left out (unless
        ``document`` was given one, for two operations whose paths have the same words)."""
        if getattr(self.view, "schema_operation_id", None):
            return self.view.schema_operation_id
        words = [part for part in self.path.strip("/").split("/") if part and not part.startswith("{")]
        return words[0] + "".join(word.capitalize() for word in words[1:])

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        # A field DRF trims and refuses when blank needs a non-space character, not just a length.
        if (
            direction == "request"
            and isinstance(field, serializers.CharField)
            and field.trim_whitespace
            and not field.allow_blank
            and not {"pattern", "format", "enum"} & set(schema)
        ):
            schema["pattern"] = NON_BLANK_PATTERN
        if direction == "request" and isinstance(field, serializers.URLField):
            # Django's URLValidator: an absolute http(s) or ftp(s) URL.
            schema["pattern"] = URL_PATTERN
        return schema


class PhoneNumberFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "phonenumber_field.serializerfields.PhoneNumberField"

    def map_serializer_field(self, auto_schema, direction):
        return {
            "type": "string",
            "pattern": PHONE_PATTERN,
            "description": "A valid international number (E.164: `+` and the country code).",
            "example": "+34666666666",
        }


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "wallet_service.api.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": (
                "`Authorization: Token <key>`, the key returned by signup or login. Keys expire "
                "(`WALLET_SERVICE_AUTH_TOKEN_EXPIRATION` hours after issue) and end at logout; a missing, "
                "unknown, logged-out or expired key gets 401 with `WWW-Authenticate: Token`."
            ),
        }


class AmountFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "wallet_service.api.fields.AmountField"

    def map_serializer_field(self, auto_schema, direction):
        if direction == "response":
            return {"type": "string", "pattern": MONEY_PATTERN, "example": "25.00"}
        return {
            "description": (
                f"Greater than zero, at most {MAX_AMOUNT}, with at most two decimals: a string "
                '(`"12.50"`, `"12.5"`, `"12"`; no sign, exponent, spaces or separators) or a JSON number '
                "taken by its value (`12.5`)."
            ),
            "oneOf": [
                {"type": "string", "pattern": AMOUNT_PATTERN},
                {
                    "type": "number",
                    "minimum": Decimal("0"),
                    "exclusiveMinimum": True,
                    "maximum": MAX_AMOUNT,
                    "multipleOf": MONEY_QUANTUM,
                },
            ],
            "example": "25.00",
        }


def canonical_paths(endpoints, **kwargs):
    """Preprocessing hook: document each path once, without the trailing slash it also accepts."""
    return [(path.rstrip("/") or "/", regex, method, callback) for path, regex, method, callback in endpoints]


def add_problem_components(result, generator, request, public):
    """Postprocessing hook: a component per problem type (the responses refer to them)."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for code in PROBLEM_TYPES:
        schemas[problem_component_name(code)] = problem_component(code)
    result["components"]["schemas"] = dict(sorted(schemas.items()))
    return result


class StatusSchema(OpenApiViewExtension):
    target_class = "wallet_service.api.views.StatusApi"

    def view_replacement(self):
        status_ok = inline_serializer("Status", {"status": serializers.ChoiceField(choices=["ok"])})
        return document(
            self.target_class,
            summary="Health check",
            description="No authentication. 200 when a query reaches the database, 503 otherwise.",
            tags=("service",),
            responses={200: OpenApiResponse(status_ok, description="The service and its database are up.")},
        )


class ProblemTypeSchema(OpenApiViewExtension):
    target_class = "wallet_service.api.views.ProblemTypeApi"

    def view_replacement(self):
        problem_type = inline_serializer(
            "ProblemType",
            {
                "type": serializers.CharField(),
                "code": serializers.CharField(),
                "status": serializers.IntegerField(),
                "title": serializers.CharField(),
                "description": serializers.CharField(),
            },
        )
        return document(
            self.target_class,
            summary="Describe a problem type",
            description="The documentation at the URI a problem document's `type` names (`/problems/<code>`).",
            tags=("service",),
            responses={200: OpenApiResponse(problem_type, description="The problem type.")},
            problems=("not_found",),
            parameters=(
                OpenApiParameter(
                    "code", str, OpenApiParameter.PATH, enum=list(PROBLEM_TYPES), description="A problem `code`."
                ),
            ),
            database=False,
        )
