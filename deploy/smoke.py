"""Drive a running wallet service over HTTP and check its answers: the deploy check's smoke test.

    python3 deploy/smoke.py http://127.0.0.1:8000 [--metrics-token TOKEN]

A client signs up, opens a wallet and tops it up (the top-up sent twice with one Idempotency-Key);
a company signs up, opens its wallet and charges the client (once within the balance, once beyond
it); both histories, /status and the business counters at /metrics are read back (or, with no
token and not public, /metrics must be closed: 403). Standard library
only, so that it runs from any Python 3 against any deployment. Exits non-zero at the first answer
that is not the contract's.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys

from httpcall import send  # deploy/httpcall.py, beside this file


class Failure(Exception):
    pass


def call(
    base: str,
    method: str,
    path: str,
    body=None,
    token: str | None = None,
    expect: int = 200,
    idempotency_key: str | None = None,
    extra_headers: dict[str, str] | None = None,
    raw: bool = False,
):
    headers = dict(extra_headers or {})
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    status, response_headers, body = send(base, method, path, body, token, headers, timeout=10)
    if status != expect:
        raise Failure(f"{method} {path}: expected {expect}, got {status}: {body[:500]!r}")
    print(f"  ok  {method} {path} -> {status}")
    if raw:
        return body.decode(), response_headers
    return (json.loads(body) if body else None), response_headers


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)


def sample(metrics: str, name: str) -> float:
    """The value of one sample line (``name`` with its labels) of a Prometheus text exposition."""
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise Failure(f"/metrics has no sample {name}")


def check_metrics(base: str, token: str | None, public: bool) -> None:
    """/metrics behind its token (closed without one, unless public), counting this session's money moves."""
    headers = {"Accept": "text/plain"}
    if token:
        call(base, "GET", "/metrics", expect=401, extra_headers=headers, raw=True)
        headers["Authorization"] = f"Bearer {token}"
    elif not public:
        closed, _ = call(base, "GET", "/metrics", expect=403, extra_headers=headers, raw=True)
        check("django_http" not in closed, "a closed /metrics showed metrics")
        return
    metrics, _ = call(base, "GET", "/metrics", extra_headers=headers, raw=True)
    # Counters add up every server worker's (multiprocess mode), so they hold at least this session's.
    check(sample(metrics, "wallet_deposits_total") >= 1, "deposits not counted")
    check(sample(metrics, 'wallet_charges_total{outcome="succeeded"}') >= 1, "charges not counted")
    check(sample(metrics, 'wallet_charges_total{outcome="insufficient_funds"}') >= 1, "failed charges not counted")
    check(sample(metrics, "wallet_charged_amount_total") >= 25, "charged amount not counted")


def run(base: str, metrics_token: str | None, metrics_public: bool = False) -> None:
    base = base.rstrip("/")
    status, _ = call(base, "GET", "/status")
    check(status == {"status": "ok"}, f"/status body {status!r}")

    suffix = secrets.token_hex(4)
    client, _ = call(
        base,
        "POST",
        "/client/signup",
        {
            "email": f"ana-{suffix}@example.com",
            "password": "s3cure-Passw0rd",
            "client": {"first_name": "Ana", "last_name": "García", "phone_number": "+34666666666"},
        },
        expect=201,
    )
    client_token = client["token"]
    wallet, _ = call(base, "POST", "/wallet/create", {}, client_token, expect=201)
    check(wallet["balance"] == "0.00", f"new wallet {wallet!r}")
    client_wallet = wallet["wallet"]
    top_up = {"wallet": client_wallet, "amount": "100.00"}
    key = f"smoke-{suffix}"
    deposit, _ = call(base, "POST", "/wallet/deposit", top_up, client_token, idempotency_key=key)
    money = {"held": "0.00"}  # wallet bodies carry held and available (balance - held)
    check(
        deposit == {"wallet": client_wallet, "balance": "100.00", "available": "100.00", **money},
        f"deposit answer {deposit!r}",
    )
    # The same request again with its Idempotency-Key: the stored answer, and no second deposit.
    replay, headers = call(base, "POST", "/wallet/deposit", top_up, client_token, idempotency_key=key)
    check(replay == deposit and headers.get("Idempotent-Replayed") == "true", f"replayed deposit {replay!r}")

    company, _ = call(
        base,
        "POST",
        "/company/signup",
        {
            "email": f"shop-{suffix}@example.com",
            "password": "s3cure-Passw0rd",
            "company": {
                "name": "Shop",
                "url": "https://shop.example.com",
                "first_name": "Luis",
                "last_name": "Pérez",
                "phone_number": "+34666666667",
            },
        },
        expect=201,
    )
    company_token = company["token"]
    merchant_wallet = call(base, "POST", "/wallet/create/", {}, company_token, expect=201)[0]["wallet"]
    charge, _ = call(
        base,
        "POST",
        "/wallet/charge",
        {"wallet": client_wallet, "amount": 25, "summary": "Order 1234"},
        company_token,
    )
    check(
        charge.keys() == {"wallet", "balance", "held", "available", "operation"}
        and (charge["wallet"], charge["balance"]) == (merchant_wallet, "25.00")
        and isinstance(charge["operation"], int),
        f"charge answer {charge!r}",
    )
    short, _ = call(
        base, "POST", "/wallet/charge", {"wallet": client_wallet, "amount": "500.00"}, company_token, expect=402
    )
    check(short.get("code") == "insufficient_funds", f"over-balance charge {short!r}")
    bad, _ = call(base, "POST", "/wallet/deposit", {"wallet": client_wallet, "amount": "1.500"}, client_token, 400)
    check(bad.get("code") == "validation_error" and "amount" in bad.get("errors", {}), f"bad amount {bad!r}")
    _, headers = call(base, "GET", "/wallet/list", expect=401)
    check(headers.get("WWW-Authenticate") == "Token", "401 without WWW-Authenticate: Token")

    info, _ = call(base, "GET", f"/wallet/info/{client_wallet}", token=client_token)
    check(
        info == {"wallet": client_wallet, "balance": "75.00", "available": "75.00", **money},
        f"client wallet after charges {info!r}",
    )
    history, _ = call(base, "GET", f"/wallet/history/{client_wallet}", token=client_token)
    seen = [(item["source__token"], item["target__token"], item["amount"], item["success"]) for item in history]
    # The merchant's wallet token is a credential: the client sees it masked to its last four characters.
    masked_merchant = "…" + merchant_wallet[-4:]
    expected = [
        (client_wallet, masked_merchant, "500.00", False),
        (client_wallet, masked_merchant, "25.00", True),
        (None, client_wallet, "100.00", True),
    ]
    check(seen == expected, f"client history {seen!r}, expected {expected!r}")
    check(all(item["date"].endswith("Z") for item in history), "history dates must be UTC with Z")
    page, headers = call(base, "GET", f"/wallet/history/{client_wallet}?limit=1", token=client_token)
    check(len(page) == 1 and 'rel="next"' in (headers.get("Link") or ""), "history pagination Link header missing")
    merchant_history, _ = call(base, "GET", f"/wallet/history/{merchant_wallet}/", token=company_token)
    check([item["success"] for item in merchant_history] == [False, True], f"merchant history {merchant_history!r}")
    check_metrics(base, metrics_token, metrics_public)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", nargs="?", default="http://127.0.0.1:8000")
    parser.add_argument("--metrics-token", help="the service's WALLET_SERVICE_METRICS_TOKEN, if it has one")
    parser.add_argument(
        "--metrics-public", action="store_true", help="WALLET_SERVICE_METRICS_PUBLIC=True (else no token: 403)"
    )
    args = parser.parse_args()
    base = args.base
    print(f"smoke test against {base}")
    try:
        run(base, args.metrics_token, args.metrics_public)
    except (Failure, OSError, KeyError, ValueError) as error:
        print(f"FAILED: {error}")
        return 1
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
