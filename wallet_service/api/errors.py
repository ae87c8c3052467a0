"""Business failures raised by services, each carrying the stable ``code`` of its problem type.

Services raise these; the exception handler (wallet_service/api/exceptions.py) renders them as
RFC 9457 responses. They are plain exceptions so that services stay free of HTTP concerns.
"""

from __future__ import annotations


class ServiceError(Exception):
    """A request refused for a business reason. ``code`` names a problem in problems.PROBLEM_TYPES."""

    code: str = "validation_error"
    default_detail: str = "The request cannot be processed."
    headers: dict[str, str] | None = None
    # Members added to the problem body (e.g. the failed charge's ``operation``).
    extra: dict | None = None

    def __init__(self, detail: str | None = None):
        self.detail = detail or self.default_detail
        super().__init__(self.detail)


class FieldError(ServiceError):
    """A field that was well-formed but is refused once the service looks at the data (400)."""

    code = "validation_error"

    def __init__(self, field: str, message: str):
        self.errors = {field: [message]}
        super().__init__(f"{field}: {message}")


class InvalidValue(ServiceError):
    """A value a service refuses once it looks at the data (400 ``validation_error``).

    ``argument`` names the service's keyword argument the value came from; the API says which request
    field that is (a view's ``field_of``, else the same name), so services know nothing of requests.
    """

    code = "validation_error"
    argument: str = "amount"


class NotFound(ServiceError):
    code = "not_found"
    default_detail = "Not found."


class InvalidCredentials(ServiceError):
    code = "invalid_credentials"
    default_detail = "Unable to log in with the provided email and password."
