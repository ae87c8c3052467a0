"""schemathesis hooks for wallet_service/tests/test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS).

The test passes who is calling in FUZZ_* environment variables: the Authorization header, kind,
email and wallet of the identity under test (a client or a company), and the funded client's wallet.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import zlib

import schemathesis

from deploy.httpcall import send

PASSWORD = "s3cure-Passw0rd"  # the test's accounts' (wallet_service/tests/servers.py signup)

# field -> message prefixes a request valid under the schema may still be refused with (400).
NOT_IN_THE_SCHEMA: dict[str, dict[str, tuple[str, ...]]] = {
    "POST /client/signup": {
        "email": ("An account with this email already exists.",),
        "password": ("",),  # Django's validators: common passwords, similarity to the email or names
        "client.phone_number": ("Enter a valid phone number.",),
    },
    "POST /company/signup": {
        "email": ("An account with this email already exists.",),
        "password": ("",),
        "company.phone_number": ("Enter a valid phone number.",),
        "company.url": ("Enter a valid URL.",),
    },
    "POST /wallet/deposit": {"amount": ("The deposit would take the balance over",)},
    "POST /wallet/charge": {"amount": ("The charge would take your balance over",)},
    "GET /wallet/list": {"cursor": ("This cursor was not issued by this service",)},
    "GET /wallet/history/{token}": {
        "cursor": ("This cursor was not issued by this service",),
        "from": ("'from' must not be later than 'to'.",),
    },
}


@schemathesis.check
def refusals_are_explained(ctx, response, case):
    """A request valid under the schema gets 400 validation_error only for a reason in NOT_IN_THE_SCHEMA."""
    if case.meta is None or not case.meta.generation.mode.is_positive or response.status_code != 400:
        return None
    body = response.json()
    if body.get("code") != "validation_error":
        return None
    allowed = NOT_IN_THE_SCHEMA.get(f"{case.method.upper()} {case.path}", {})
    unexplained = {
        field: messages
        for field, messages in body["errors"].items()
        if field not in allowed or not all(message.startswith(allowed[field]) for message in messages)
    }
    if unexplained:
        raise AssertionError(f"A request valid under the schema was refused: {unexplained}")
    return True


def picks_a_real_wallet(case) -> bool:
    """Three cases in four use a real wallet instead of the generated token, which only ever reaches
    a 404. Decided by the case's content, so that a failing case replays exactly."""
    return zlib.crc32(repr((case.path_parameters, case.body, case.query)).encode()) % 4 != 0


def fresh_key(base_url: str) -> str:
    kind, email = os.environ["FUZZ_KIND"], os.environ["FUZZ_EMAIL"]
    status, _, body = send(base_url, "POST", f"/{kind}/login", {"email": email, "password": PASSWORD})
    assert status == 200, body
    return json.loads(body)["token"]


IDEMPOTENCY_KEY = re.compile(r"[!-~]([ -~]{0,253}[!-~])?")
sent_keys = itertools.count()


def idempotency_key(case) -> None:
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if key is None:
        return
    if case.method.upper() != case.operation.method.upper():
        # A probe with a method the operation does not declare, expecting 405. With a key that named
        # another request, the contract's 422 (same key, another method) comes first: send none.
        del headers["Idempotency-Key"]
    elif IDEMPOTENCY_KEY.fullmatch(key) and zlib.crc32(key.encode()) % 4 != 0:
        # Generated keys repeat ("0", "00"...), and a repeat is a replay or a 422: three keys in four
        # are made unique, so that the requests they name are executed.
        suffix = f"-{next(sent_keys)}"
        headers["Idempotency-Key"] = key[: 255 - len(suffix)].rstrip() + suffix


@schemathesis.hook
def before_call(context, case, kwargs):
    idempotency_key(case)
    if case.path.endswith("/logout") and (case.headers or {}).get("Authorization") == os.environ["FUZZ_AUTHORIZATION"]:
        # Logging out ends the key it carries: each logout gets a key of its own.
        case.headers["Authorization"] = f"Token {fresh_key(case.operation.base_url.rstrip('/'))}"
    if not picks_a_real_wallet(case):
        return
    if case.path_parameters and "token" in case.path_parameters:
        case.path_parameters["token"] = os.environ["FUZZ_WALLET"]
    if isinstance(case.body, dict) and isinstance(case.body.get("wallet"), str):
        # A company charges the funded client's wallet; anyone deposits into their own.
        charge = case.path == "/wallet/charge"
        case.body["wallet"] = os.environ["FUZZ_CLIENT_WALLET" if charge else "FUZZ_WALLET"]


@schemathesis.hook
def after_call(context, case, response):
    """One line per request in FUZZ_STATS: the operation and the status it got."""
    with open(os.environ["FUZZ_STATS"], "a") as stats:
        stats.write(f"{case.method.upper()} {case.path} {response.status_code}\n")
