"""Idempotency answers that refuse a request (the contract's 400, 409 and 422 for a key)."""

from __future__ import annotations

from wallet_service.api.errors import ServiceError


class IdempotencyKeyInUse(ServiceError):
    code = "idempotency_key_in_use"
    default_detail = "A request with this Idempotency-Key is still being processed; retry in a moment."
    headers = {"Retry-After": "1"}


class IdempotencyKeyReused(ServiceError):
    code = "idempotency_key_reused"
