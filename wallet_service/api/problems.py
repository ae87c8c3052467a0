"""The catalogue of problem types (RFC 9457) the API answers with, and how they are rendered.

Each problem has a stable ``code`` that clients branch on; its ``type`` is the relative URI
``/problems/<code>``, which the service itself serves as documentation.
"""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework.response import Response

PROBLEM_CONTENT_TYPE = "application/problem+json"


@dataclass(frozen=True)
class ProblemType:
    code: str
    status: int
    title: str
    description: str

    @property
    def type_uri(self) -> str:
        return f"/problems/{self.code}"


PROBLEM_TYPES: dict[str, ProblemType] = {
    problem.code: problem
    for problem in (
        ProblemType(
            "validation_error",
            400,
            "Invalid request",
            "The body, a query parameter or a field is malformed or missing. `errors` maps each "
            "field (dotted for nested ones, e.g. `client.phone_number`) to its messages.",
        ),
        ProblemType("same_wallet", 400, "Cannot charge own wallet", "A merchant tried to charge its own wallet."),
        ProblemType(
            "invalid_credentials",
            400,
            "Invalid credentials",
            "The email or the password is wrong, or the account is of the other kind (client/company).",
        ),
        ProblemType("not_authenticated", 401, "Authentication required", "Send `Authorization: Token <key>`."),
        ProblemType(
            "authentication_failed",
            401,
            "Authentication failed",
            "The token is unknown, logged out or expired. Log in again for a new one.",
        ),
        ProblemType(
            "insufficient_funds",
            402,
            "Insufficient funds",
            "The charged wallet's balance does not cover the amount. Nothing moved; the attempt is "
            "recorded as a failed operation in the history of both wallets.",
        ),
        ProblemType("permission_denied", 403, "Permission denied", "This account may not perform the operation."),
        ProblemType(
            "not_found",
            404,
            "Not found",
            "No such resource, or it belongs to another user (other users' wallets are never revealed).",
        ),
        ProblemType("method_not_allowed", 405, "Method not allowed", "See the `Allow` header."),
        ProblemType(
            "wallet_limit_reached",
            409,
            "Wallet limit reached",
            "A company has one wallet; a client has at most WALLET_SERVICE_MAX_WALLETS_BY_CLIENT.",
        ),
        ProblemType(
            "webhook_limit_reached",
            409,
            "Webhook limit reached",
            "A user has at most 16 webhook endpoints: delete one before adding another.",
        ),
        ProblemType(
            "merchant_wallet_missing",
            409,
            "Merchant wallet missing",
            "A company must create its wallet before it can charge.",
        ),
        ProblemType(
            "hold_not_pending",
            409,
            "Hold not pending",
            "The hold is already captured, voided or expired: it can no longer be captured or voided.",
        ),
        ProblemType(
            "idempotency_key_in_use",
            409,
            "Idempotency key in use",
            "A request with this Idempotency-Key is still being processed; retry later.",
        ),
        ProblemType(
            "request_timeout",
            408,
            "Request timeout",
            "The request body did not arrive in time; the connection is closed. Send it again.",
        ),
        ProblemType("payload_too_large", 413, "Payload too large", "The request body is larger than the API accepts."),
        ProblemType(
            "unsupported_media_type",
            415,
            "Unsupported media type",
            "Send the body as JSON with `Content-Type: application/json`.",
        ),
        ProblemType(
            "idempotency_key_reused",
            422,
            "Idempotency key reused",
            "This Idempotency-Key was used for a request with another method, path or body.",
        ),
        ProblemType("throttled", 429, "Too many requests", "Too many attempts; see the `Retry-After` header."),
        ProblemType("server_error", 500, "Internal server error", "An unexpected error; it has been logged."),
        ProblemType(
            "service_unavailable",
            503,
            "Service unavailable",
            "The service cannot reach its database right now; retry later.",
        ),
    )
}


def problem_body(
    code: str,
    detail: str,
    *,
    errors: dict[str, list[str]] | None = None,
    status: int | None = None,
    extra: dict | None = None,
):
    """The problem+json document for ``code``; ``status`` overrides the catalogue's default; ``extra``
    members (such as a failed charge's ``operation``) are added to it."""
    problem = PROBLEM_TYPES[code]
    body = {
        "type": problem.type_uri,
        "title": problem.title,
        "status": status or problem.status,
        "detail": detail,
        "code": code,
    }
    if errors is not None:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return body


def problem_response(
    code: str,
    detail: str,
    *,
    errors: dict[str, list[str]] | None = None,
    status: int | None = None,
    headers: dict[str, str] | None = None,
    extra: dict | None = None,
) -> Response:
    body = problem_body(code, detail, errors=errors, status=status, extra=extra)
    return Response(body, status=body["status"], headers=headers, content_type=PROBLEM_CONTENT_TYPE)
