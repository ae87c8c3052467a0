"""schemathesis hooks for wallet_service/tests/test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS).

The test passes who is calling in FUZZ_* environment variables: the Authorization header, kind,
email and wallet of the identity under test (a client or a company), and the funded client's wallet
and Authorization header.

As the company, three cases in four of a hold's capture, void or read get a hold of its own, placed
for the case, and three in four refunds name a charge of its own, made for the case; each sized to the
generated amount (the client's wallet topped up by that much first), so that these operations are
exercised through to their 200s — not only the 404 of an unknown id.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import zlib
from decimal import Decimal, InvalidOperation

import schemathesis

from deploy.httpcall import send
from wallet_service.money import MAX_AMOUNT

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
    # Only when the case's amount is not the one its hold or charge was made for (an unparsed amount).
    "POST /wallet/hold/{hold_id}/capture": {"amount": ("At most what the hold still reserves can be captured",)},
    "POST /wallet/refund": {
        "amount": ("At most what is left to refund", "Nothing is left to refund"),
        "operation": ("Only a successful charge or capture into your wallet can be refunded.",),
    },
    "GET /wallet/list": {"cursor": ("This cursor was not issued by this service",)},
    # An event id is a string; only the caller's own are accepted (the schema cannot say which).
    "GET /events": {"after": ("This is not one of your event ids.",)},
    # Where a webhook URL points (a host that resolves, and only to public addresses; https; no user,
    # fragment or spaces) is checked by resolving it, which a schema cannot say.
    "POST /webhooks": {
        "url": (
            "The host",
            "Must be an https:// URL.",
            "Must name a host.",
            "Must not contain",
            "Not a valid URL.",
            "Must be at most",
        )
    },
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


def call(base_url: str, path: str, body: dict, authorization: str) -> dict:
    status, _, raw = send(base_url, "POST", path, body, headers={"Authorization": authorization})
    assert 200 <= status < 300, (path, status, raw)
    return json.loads(raw)


def amount_of(body) -> Decimal:
    """The case's amount when it is a valid one (what the hold or charge made for it is sized to), else 10.00."""
    value = body.get("amount") if isinstance(body, dict) else None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return Decimal("10.00")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return Decimal("10.00")
    if not amount.is_finite() or not 0 < amount <= MAX_AMOUNT or amount != amount.quantize(Decimal("0.01")):
        return Decimal("10.00")
    return amount.quantize(Decimal("0.01"))


def funded_for(base_url: str, amount: Decimal) -> str:
    """Deposit ``amount`` into the funded client's wallet, so that a hold or charge of it is covered."""
    wallet = os.environ["FUZZ_CLIENT_WALLET"]
    call(
        base_url, "/wallet/deposit", {"wallet": wallet, "amount": str(amount)}, os.environ["FUZZ_CLIENT_AUTHORIZATION"]
    )
    return wallet


def own_hold(base_url: str, amount: Decimal) -> str:
    """A pending hold of the company's on the funded client's wallet, of ``amount``."""
    wallet = funded_for(base_url, amount)
    body = {"wallet": wallet, "amount": str(amount), "summary": "fuzz", "expires_in": 3600}
    return call(base_url, "/wallet/hold", body, os.environ["FUZZ_AUTHORIZATION"])["hold"]


def own_charge(base_url: str, amount: Decimal) -> int:
    """A successful charge of ``amount`` into the company's wallet, to refund."""
    wallet = funded_for(base_url, amount)
    body = {"wallet": wallet, "amount": str(amount), "summary": "fuzz"}
    return call(base_url, "/wallet/charge", body, os.environ["FUZZ_AUTHORIZATION"])["operation"]


def company_objects(case) -> None:
    """Give a company's hold and refund cases a hold or charge of its own (see the module's docstring)."""
    if os.environ["FUZZ_KIND"] != "company":
        return
    base_url = case.operation.base_url.rstrip("/")
    if case.path_parameters and "hold_id" in case.path_parameters:
        amount = amount_of(case.body) if case.path.endswith("/capture") else Decimal("1.00")
        # Half of the holds for a capture are twice its amount: partial captures, and the rest released or kept.
        if zlib.crc32(repr(case.body).encode()) % 2 and amount * 2 <= MAX_AMOUNT:
            amount *= 2
        case.path_parameters["hold_id"] = own_hold(base_url, amount)
    elif case.path == "/wallet/refund" and isinstance(case.body, dict) and "operation" in case.body:
        case.body["operation"] = own_charge(base_url, amount_of(case.body))


@schemathesis.hook
def before_call(context, case, kwargs):
    idempotency_key(case)
    if case.path.endswith("/logout") and (case.headers or {}).get("Authorization") == os.environ["FUZZ_AUTHORIZATION"]:
        # Logging out ends the key it carries: each logout gets a key of its own.
        case.headers["Authorization"] = f"Token {fresh_key(case.operation.base_url.rstrip('/'))}"
    if not picks_a_real_wallet(case):
        return
    company_objects(case)
    if case.path_parameters and "token" in case.path_parameters:
        case.path_parameters["token"] = os.environ["FUZZ_WALLET"]
    if isinstance(case.body, dict) and isinstance(case.body.get("wallet"), str):
        # A company charges or holds the funded client's wallet; anyone deposits into their own.
        charge = case.path in ("/wallet/charge", "/wallet/hold")
        case.body["wallet"] = os.environ["FUZZ_CLIENT_WALLET" if charge else "FUZZ_WALLET"]
        if case.path == "/wallet/hold" and os.environ["FUZZ_KIND"] == "company":
            funded_for(case.operation.base_url.rstrip("/"), amount_of(case.body))  # a hold of it is placed


@schemathesis.hook
def after_call(context, case, response):
    """One line per request in FUZZ_STATS: the operation and the status it got."""
    with open(os.environ["FUZZ_STATS"], "a") as stats:
        stats.write(f"{case.method.upper()} {case.path} {response.status_code}\n")
