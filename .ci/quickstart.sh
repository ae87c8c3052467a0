#!/usr/bin/env bash
# The README's quick start, as a new user would do it: `make run` on the embedded default
# database, then through real HTTP a signup, a wallet, a deposit, a charge by a company and the
# history. Exits non-zero on the first unexpected answer. Stops the server it started.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${QUICKSTART_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
BASE="http://127.0.0.1:${PORT}"
LOG="$(mktemp)"
unset DATABASE_URL
export WALLET_SERVICE_AUTH_THROTTLE_RATE="${WALLET_SERVICE_AUTH_THROTTLE_RATE:-20/minute}"

setsid make run PORT="$PORT" >"$LOG" 2>&1 &
SERVER_PID=$!
stop_server() {
    kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}
trap stop_server EXIT

# Bounded: at most QUICKSTART_TIMEOUT seconds (the first `make run` installs and migrates), and each probe
# at most 2 s, so a server that accepts connections but never answers cannot hang the script.
TIMEOUT="${QUICKSTART_TIMEOUT:-120}"
DEADLINE=$((SECONDS + TIMEOUT))
until curl -fsS --max-time 2 "$BASE/status" >/dev/null 2>&1; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then echo "make run exited:"; cat "$LOG"; exit 1; fi
    if ((SECONDS >= DEADLINE)); then echo "server did not answer /status within ${TIMEOUT} s:"; cat "$LOG"; exit 1; fi
    sleep 1
done

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
call() {  # call METHOD PATH EXPECTED_STATUS [TOKEN] [BODY] -> prints the body
    local method="$1" path="$2" expected="$3" token="${4:-}" body="${5:-}"
    local args=(-sS --max-time 30 -o /tmp/quickstart.body -w '%{http_code}' -X "$method" "$BASE$path" -H 'Content-Type: application/json')
    [[ -n "$token" ]] && args+=(-H "Authorization: Token $token")
    [[ -n "$body" ]] && args+=(-d "$body")
    local status
    status="$(curl "${args[@]}")"
    if [[ "$status" != "$expected" ]]; then
        echo "$method $path: expected $expected, got $status: $(cat /tmp/quickstart.body)" >&2
        exit 1
    fi
    cat /tmp/quickstart.body
}

RUN_ID="$(date +%s%N)"
CLIENT_TOKEN="$(call POST /client/signup 201 "" "{\"email\": \"ana.$RUN_ID@example.com\", \"password\": \"s3cure-Passw0rd\",
  \"client\": {\"first_name\": \"Ana\", \"last_name\": \"García\", \"phone_number\": \"+34666666666\"}}" | json '["token"]')"
WALLET="$(call POST /wallet/create 201 "$CLIENT_TOKEN" '{}' | json '["wallet"]')"
BALANCE="$(call POST /wallet/deposit 200 "$CLIENT_TOKEN" "{\"wallet\": \"$WALLET\", \"amount\": \"100.00\"}" | json '["balance"]')"
[[ "$BALANCE" == "100.00" ]] || { echo "deposit: balance $BALANCE"; exit 1; }

SHOP_TOKEN="$(call POST /company/signup 201 "" "{\"email\": \"shop.$RUN_ID@example.com\", \"password\": \"s3cure-Passw0rd\",
  \"company\": {\"name\": \"Shop\", \"url\": \"https://shop.example.com\", \"first_name\": \"Luis\",
  \"last_name\": \"Pérez\", \"phone_number\": \"+34666666667\"}}" | json '["token"]')"
SHOP_WALLET="$(call POST /wallet/create 201 "$SHOP_TOKEN" '{}' | json '["wallet"]')"
SHOP_BALANCE="$(call POST /wallet/charge 200 "$SHOP_TOKEN" "{\"wallet\": \"$WALLET\", \"amount\": \"25.00\", \"summary\": \"Order 1234\"}" | json '["balance"]')"
[[ "$SHOP_BALANCE" == "25.00" ]] || { echo "charge: merchant balance $SHOP_BALANCE"; exit 1; }
call POST /wallet/charge 402 "$SHOP_TOKEN" "{\"wallet\": \"$WALLET\", \"amount\": \"500.00\"}" | json '["code"]' | grep -qx insufficient_funds

HISTORY="$(call GET "/wallet/history/$WALLET" 200 "$CLIENT_TOKEN")"
python3 - "$HISTORY" "$WALLET" "$SHOP_WALLET" <<'PY'
import json, sys
history, wallet, shop = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
got = [(o["source__token"], o["target__token"], o["amount"], o["success"]) for o in history]
shop = "\u2026" + shop[-4:]  # the client sees the merchant's wallet token masked: "…" and its last four
want = [(wallet, shop, "500.00", False), (wallet, shop, "25.00", True), (None, wallet, "100.00", True)]
assert got == want, f"history {got} != {want}"
PY
BALANCE="$(call GET "/wallet/info/$WALLET" 200 "$CLIENT_TOKEN" | json '["balance"]')"
[[ "$BALANCE" == "75.00" ]] || { echo "info: balance $BALANCE"; exit 1; }
# The documentation page and the assets it loads, as make run serves them (after collectstatic).
DOCS="$(curl -fsS --max-time 30 "$BASE/docs")"
ASSETS="$(grep -o '/static/[^"]*' <<<"$DOCS")"
[[ "$(wc -l <<<"$ASSETS")" -ge 3 ]] || { echo "/docs names no Swagger UI assets"; exit 1; }
for asset in $ASSETS; do curl -fsS --max-time 30 -o /dev/null "$BASE$asset"; done
# Read the whole schema first: `curl | grep -q` fails under pipefail when grep exits before curl is done.
SCHEMA="$(curl -fsS --max-time 30 "$BASE/schema")"
grep -q '^  /wallet/charge:$' <<<"$SCHEMA" || { echo "/schema lacks /wallet/charge"; exit 1; }
echo "quickstart: make run on the embedded database served signup, wallet, deposit, charge, history and /docs"
