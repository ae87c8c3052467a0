"""The OpenAPI schema (drf-spectacular): what every operation shares.

Each app describes its own views in its ``schema.py`` (OpenApiViewExtensions, so that views stay
plain) through ``document()``. This module holds the rest, derived from the code it describes:

- one component per problem type of ``PROBLEM_TYPES``, with its ``code``, ``type``, ``title``
  and ``status`` as constants, so a client can branch on ``code`` from the schema alone;
- the problem responses a view gets from its own configuration: 401 when it requires a key, 429
  when it is throttled, 400/413/415 when it reads a JSON body, 503 when it uses the database, and
  500 everywhere; a status with several problem types is a ``oneOf`` with a ``discriminator`` on
  ``code``, so a generated client picks the right type; 405 is a components response (it answers a
  method no operation lists);
- ``X-Request-ID``: an optional request header and a response header of every operation;
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
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated

from wallet_service.api.pagination import PAGE_DEFAULT_LIMIT, PAGE_MAX_LIMIT
from wallet_service.api.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPES
from wallet_service.api.shapes import MONEY_PATTERN, serializer_for
from wallet_service.api.views import ProblemTypeOutput, Status
from wallet_service.logs import REQUEST_ID_RE
from wallet_service.money import MAX_AMOUNT, MONEY_QUANTUM

# A positive amount with at most two decimals, up to MAX_AMOUNT (1000000000.00), as the contract
# writes it: digits, optionally a point and one or two digits, leading zeros allowed.
AMOUNT_PATTERN = r"^(0*[1-9][0-9]{0,8}(\.[0-9]{1,2})?|0+\.(0[1-9]|[1-9][0-9]?)|0*1000000000(\.0{1,2})?)$"
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


# Any value is taken (an implausible one is replaced, never refused), so the request header has no pattern;
# the response header always matches REQUEST_ID_RE.
REQUEST_ID = OpenApiParameter(
    "X-Request-ID",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "Your id for this request, to find it in the service's logs: kept when it is 1 to 128 letters, digits "
        "and `._:=+/@-` (a UUID, a proxy's trace id), else replaced by a new one. Never refused."
    ),
)
REQUEST_ID_ECHO = OpenApiParameter(
    "X-Request-ID",
    {"type": "string", "pattern": f"^{REQUEST_ID_RE.pattern}$"},
    OpenApiParameter.HEADER,
    response=True,
    description="The request's id, carried by every log line about it: the incoming `X-Request-ID` when it "
    "was kept, else a new one (32 hex digits). Quote it when reporting a problem.",
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
        # The component's own name: generated clients name their classes after the title.
        "title": problem_component_name(code),
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
        if len(refs) == 1:
            schema = refs[0]
        else:
            # Typed clients (openapi-python-client, openapi-generator) pick the type by `code` instead of
            # trying each in turn.
            mapping = {code: ref["$ref"] for code, ref in zip(status_codes, refs, strict=True)}
            schema = {"oneOf": refs, "discriminator": {"propertyName": "code", "mapping": mapping}}
        responses[(status, PROBLEM_CONTENT_TYPE)] = OpenApiResponse(response=schema, description=description)
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
    body, 503 if it uses the database), 500, and the ``X-Request-ID`` headers."""
    codes = [*problems, "server_error"]
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
        parameters=[*parameters, REQUEST_ID, REQUEST_ID_ECHO, *problem_headers(codes)],
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
                "unknown, logged-out or expired key gets 401 with `WWW-Authenticate: Token`.\n\n"
                "The prefix is `Token`, not `Bearer`: a generated client that sends `Bearer <key>` by default "
                "gets 401. Set its prefix: openapi-python-client "
                '`AuthenticatedClient(base_url=..., token=key, prefix="Token")`; openapi-generator '
                '`Configuration(api_key={"tokenAuth": key}, api_key_prefix={"tokenAuth": "Token"})`; '
                "Swagger UI's *Authorize*: `Token <key>`."
            ),
        }


class AmountFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "wallet_service.api.fields.AmountField"

    def map_serializer_field(self, auto_schema, direction):
        if direction == "response":
            return {"type": "string", "pattern": MONEY_PATTERN, "example": "25.00"}
        return {
            "description": (
                f"Greater than zero, at most {MAX_AMOUNT}, with at most two decimals. **Send a string** "
                '(`"12.50"`, `"12.5"`, `"12"`; no sign, exponent, spaces or separators): it is exact, and a '
                "client can build it from a decimal type. A JSON number (`12.5`) is accepted too and taken by "
                "its value as written, but a client that holds money as a binary float (`0.1 + 0.2`) may send "
                "`0.30000000000000004`, which is refused for having more than two decimals."
            ),
            "oneOf": [
                {"type": "string", "pattern": AMOUNT_PATTERN, "example": "25.00"},
                {
                    "description": "Accepted; prefer the string form.",
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
    """Postprocessing hook: a component per problem type (the responses refer to them), and the 405 response,
    which answers a method that no operation lists, as a component of its own."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for code in PROBLEM_TYPES:
        schemas[problem_component_name(code)] = problem_component(code)
    result["components"]["schemas"] = dict(sorted(schemas.items()))
    # X-Request-ID is the same on every operation and response: written once, referred to everywhere.
    for item in result.get("paths", {}).values():
        for operation in item.values():
            parameters = operation.get("parameters", [])
            for index, parameter in enumerate(parameters):
                if parameter.get("in") == "header" and parameter["name"] == REQUEST_ID.name:
                    parameters[index] = {"$ref": "#/components/parameters/XRequestID"}
            for response in operation.get("responses", {}).values():
                if REQUEST_ID_ECHO.name in response.get("headers", {}):
                    response["headers"][REQUEST_ID_ECHO.name] = {"$ref": "#/components/headers/XRequestID"}
    result["components"]["parameters"] = {
        "XRequestID": {
            "in": "header",
            "name": REQUEST_ID.name,
            "required": False,
            "schema": {"type": "string"},
            "description": REQUEST_ID.description,
        }
    }
    echo = {"schema": REQUEST_ID_ECHO.type, "description": REQUEST_ID_ECHO.description}
    result["components"]["headers"] = {"XRequestID": echo}
    result["components"]["responses"] = {
        "MethodNotAllowed": {
            "description": "Any method a path's operations do not list (`DELETE /wallet/charge`). On an "
            "operation that takes an `Idempotency-Key`, a key that named another request gets 422 first.",
            "headers": {
                "Allow": {"schema": {"type": "string"}, "description": "The methods the path serves."},
                "X-Request-ID": {"$ref": "#/components/headers/XRequestID"},
            },
            "content": {
                PROBLEM_CONTENT_TYPE: {
                    "schema": {"$ref": f"#/components/schemas/{problem_component_name('method_not_allowed')}"}
                }
            },
        }
    }
    return result


class StatusSchema(OpenApiViewExtension):
    target_class = "wallet_service.api.views.StatusApi"

    def view_replacement(self):
        status_ok = serializer_for(Status)
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
        problem_type = serializer_for(ProblemTypeOutput, "ProblemType")
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
