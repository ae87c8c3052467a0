"""``IdempotentApiMixin``: the contract's ``Idempotency-Key`` for any view that moves money.

Put it first among a view's bases. A request without the header is untouched. With it, the whole
request — the key's claim, the service's writes and the stored response — is one database
transaction, so no crash between them can leave money moved without its key or a key without
its money:

1. after authentication (401 comes first), the key is validated (400) and claimed: a key used
   before answers with its stored response (``Idempotent-Replayed: true``) or 422 when the
   method, path or body differ; a key whose first request is still running waits for it;
2. the view runs as usual, inside the transaction;
3. an executed outcome — a 2xx, or the 402 of a recorded failed charge or hold (its problem names
   the recorded ``operation``; a refund's 402 records nothing) — is stored with the key
   and committed with the money; any other answer rolls the transaction back and stores nothing,
   so the client may retry with the same key.
"""

from __future__ import annotations

import re

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError, transaction
from django.http import HttpResponse
from rest_framework.request import Request

from idempotency.fingerprints import body_digest, canonical_path
from idempotency.services import StoredResponse, idempotency_check, idempotency_claim, idempotency_complete
from wallet_service.api.errors import FieldError
from wallet_service.api.exceptions import database_problem

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_RE = re.compile(r"[\x20-\x7e]{1,255}")
# Answers that record an executed request: a 402 when it names the failed charge or hold written to
# the ledger. A refund's 402 names none: nothing was recorded, so nothing is stored either.
STORED_STATUSES = frozenset({402})


def is_executed(response) -> bool:
    if 200 <= response.status_code < 300:
        return True
    data = getattr(response, "data", None)
    return response.status_code in STORED_STATUSES and isinstance(data, dict) and data.get("operation") is not None


class _Replay(Exception):
    def __init__(self, stored: StoredResponse):
        self.stored = stored


class IdempotentApiMixin:
    # The methods that execute something; a key on any other method is only compared (422 when
    # it names another request), never claimed or stored.
    idempotent_methods = ("POST",)

    def dispatch(self, request, *args, **kwargs):
        if HEADER not in request.headers:
            return super().dispatch(request, *args, **kwargs)
        self.idempotency_claim_id = None
        # Read the body before the transaction begins: a client sending it slowly must not hold a
        # transaction open (and the locks it takes).
        self.idempotency_digest = request_body_digest(request)
        if request.method not in self.idempotent_methods:
            return super().dispatch(request, *args, **kwargs)
        try:
            with transaction.atomic():
                response = super().dispatch(request, *args, **kwargs)
                if not is_executed(response):
                    # Refused before execution, or failed: nothing is stored and nothing moved.
                    transaction.set_rollback(True)
                elif self.idempotency_claim_id is not None:
                    response.render()
                    stored = StoredResponse(response.status_code, response.content, response["Content-Type"])
                    idempotency_complete(claim_id=self.idempotency_claim_id, response=stored)
        except (OperationalError, InterfaceError) as error:
            # The transaction could not begin (the database is down), or storing the answer or the
            # COMMIT failed (the connection dropped): the outcome is unknown to us, so the client gets
            # a 503 and retries with the same key, which then replays or executes once.
            return self._database_error_response(request, error, *args, **kwargs)
        return response

    def _database_error_response(self, request, error, *args, **kwargs):
        # When BEGIN failed, DRF has not set the view up yet (no DRF request, no default headers).
        if not isinstance(request, Request):
            request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = getattr(self, "headers", self.default_response_headers)
        return self.finalize_response(request, database_problem(error), *args, **kwargs)

    def check_permissions(self, request):
        # The contract's order: 401 first, then the idempotency answers, then 403 and the rest.
        if request.user and request.user.is_authenticated and HEADER in request.headers:
            self._claim_idempotency_key(request)
        super().check_permissions(request)

    def _claim_idempotency_key(self, request) -> None:
        key = request.headers[HEADER]
        if not KEY_RE.fullmatch(key):
            raise FieldError(HEADER, "Send 1 to 255 printable ASCII characters.")
        request_id = {
            "user": request.user,
            "key": key,
            "method": request.method,
            "path": canonical_path(request.path),
            "body_digest": self.idempotency_digest,
        }
        if request.method not in self.idempotent_methods:
            idempotency_check(**request_id)  # 422 if the key was used; otherwise nothing to claim
            return
        outcome = idempotency_claim(**request_id)
        if isinstance(outcome, StoredResponse):
            raise _Replay(outcome)
        self.idempotency_claim_id = outcome

    def handle_exception(self, exc):
        if isinstance(exc, _Replay):
            response = HttpResponse(
                exc.stored.body, status=exc.stored.status_code, content_type=exc.stored.content_type
            )
            response[REPLAYED_HEADER] = "true"
            return response
        return super().handle_exception(exc)


def request_body_digest(request) -> str:
    try:
        return body_digest(request.body)
    except RequestDataTooBig:
        return "too-large"  # refused with 413 by the view; matches no stored request
