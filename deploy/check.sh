#!/usr/bin/env bash
# `make deploy-check`: the deployment files checked statically, then for real on this machine.
# The image is built and run with podman (no Docker engine here) against this machine's PostgreSQL,
# in its own database; the playbook runs twice against localhost. Each step says what it checks.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

export PATH="$ROOT/.venv-deploy/bin:$PATH"
export CONTAINERS_CONF="$ROOT/deploy/containers.conf"
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 ANSIBLE_RETRY_FILES_ENABLED=0 PY_COLORS=0 NO_COLOR=1

PYTHON="$ROOT/.venv/bin/python"
STATE="$ROOT/var/deploy-check"
IMAGE=localhost/wallet-service:check
PG_SERVER="${DEPLOY_CHECK_PG_SERVER:-postgres://postgres@127.0.0.1:5432}"
DB_NAME="${DEPLOY_CHECK_DB:-wallet_deploy_check}"
DATABASE_URL_CHECK="$PG_SERVER/$DB_NAME"
# The runtime role of the image-level steps: on this machine's server, which trusts 127.0.0.1.
RUNTIME_ROLE="${DEPLOY_CHECK_RUNTIME_ROLE:-wallet_deploy_check_app}"
RUNTIME_URL_CHECK=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(p._replace(netloc=sys.argv[2] + "@" + p.netloc.rpartition("@")[2]).geturl())' "$DATABASE_URL_CHECK" "$RUNTIME_ROLE")
SECRET_KEY_CHECK="deploy-check-only-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
METRICS_TOKEN_CHECK="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
CONTAINERS=(wallet-deploy-check-migrate-1 wallet-deploy-check-migrate-2 wallet-deploy-check-web wallet-deploy-check-nodb)
mkdir -p "$STATE"

COMPOSE_PROJECT=wallet-deploy-check
podman_compose() {
    podman-compose --project-name "$COMPOSE_PROJECT" --env-file "$STATE/compose-run.env" --file docker-compose.yml "$@" \
        >>"$STATE/podman-compose.log" 2>&1
}

cleanup() {
    local name
    if [[ -s "$STATE/compose-run.env" ]]; then
        podman_compose --profile replica down --volumes || true
    fi
    for name in "${CONTAINERS[@]}"; do
        podman rm --force --time 5 "$name" >/dev/null 2>&1 || true
    done
    psql_admin "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" || true
    psql_admin "DROP ROLE IF EXISTS $RUNTIME_ROLE" || true
}
trap cleanup EXIT
for name in "${CONTAINERS[@]}"; do
    podman rm --force --time 5 "$name" >/dev/null 2>&1 || true
done

psql_admin() {
    "$PYTHON" - "$PG_SERVER/postgres" "$1" <<'PY'
import sys
import psycopg
with psycopg.connect(sys.argv[1], autocommit=True) as connection:
    connection.execute(sys.argv[2])
PY
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

STEP=0
STEPS=14
STARTED=$SECONDS
step() {
    STEP=$((STEP + 1))
    STEP_STARTED=$SECONDS
    echo
    echo "==> [$STEP/$STEPS] $1"
}
passed() {
    echo "    passed: $1 ($((SECONDS - STEP_STARTED)) s)"
}
fail() {
    echo "    FAILED: $1"
    exit 1
}

app_env=(--env "DATABASE_URL=$DATABASE_URL_CHECK" --env "WALLET_SERVICE_SECRET_KEY=$SECRET_KEY_CHECK")
# web, as deployed: connected as the runtime role.
runtime_env=(--env "DATABASE_URL=$RUNTIME_URL_CHECK" --env "WALLET_SERVICE_SECRET_KEY=$SECRET_KEY_CHECK")
# The same confinement as docker-compose.yml gives the app containers.
confined=(--read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges --network host)

# ---------------------------------------------------------------------------------------------------
step "Dockerfile: hadolint reports nothing (no error, warning or style note)"
hadolint Dockerfile
passed "hadolint $(hadolint --version | awk '{print $NF}')"

step "docker-compose.yml: Compose v2 accepts it (docker compose config -q) and it matches the compose-spec schema"
compose="$("$ROOT/.venv-deploy/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')"
sed -e 's/^WALLET_SERVICE_SECRET_KEY=$/WALLET_SERVICE_SECRET_KEY=placeholder/' \
    -e 's/^POSTGRES_PASSWORD=$/POSTGRES_PASSWORD=placeholder/' \
    -e 's/^POSTGRES_APP_PASSWORD=$/POSTGRES_APP_PASSWORD=placeholder/' .env.example >"$STATE/compose.env"
"$compose" --env-file "$STATE/compose.env" config --quiet
if "$compose" --env-file /dev/null config --quiet 2>"$STATE/compose-no-secrets.log"; then
    fail "compose accepted a configuration without secrets"
fi
grep -Eq '(WALLET_SERVICE_SECRET_KEY|POSTGRES_PASSWORD|POSTGRES_APP_PASSWORD) is missing a value' "$STATE/compose-no-secrets.log" || fail "compose's refusal does not name the missing secret"
check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
# The profile "replica" (db-replica, pgbouncer; docs/SCALING.md), with web pointed at them as .env.example says.
sed -e 's/^#COMPOSE_PROFILES=/COMPOSE_PROFILES=/' -e 's/^#\(DATABASE_URL=\|WALLET_SERVICE_DATABASE_POOLER=\|WALLET_SERVICE_READ_REPLICA_URLS=\)/\1/' \
    -e 's/<POSTGRES_APP_PASSWORD>/placeholder/g' "$STATE/compose.env" >"$STATE/compose-replica.env"
"$compose" --env-file "$STATE/compose-replica.env" config --format json >"$STATE/compose-replica.json"
python3 - "$STATE/compose-replica.json" <<'PY' || fail "the profile replica is not wired as docs/SCALING.md says"
import json, sys
project = json.load(open(sys.argv[1]))
services = project["services"]
assert {"db-replica", "pgbouncer"} <= set(services), sorted(services)
web = services["web"]["environment"]
assert web["DATABASE_URL"].endswith("@pgbouncer:6432/wallet"), web["DATABASE_URL"]
assert web["WALLET_SERVICE_DATABASE_POOLER"] == "pgbouncer"
assert web["WALLET_SERVICE_READ_REPLICA_URLS"].endswith("@db-replica:5432/wallet")
migrate = services["migrate"]["environment"]
assert migrate["DATABASE_URL"].endswith("@db:5432/wallet") and not migrate["WALLET_SERVICE_DATABASE_POOLER"], migrate
PY
"$compose" --env-file "$STATE/compose.env" config --services | grep -qx pgbouncer && fail "the profile replica's services start without it"
hadolint deploy/pgbouncer/Dockerfile
passed "$("$compose" version --short) accepts it with .env.example's variables (and with its profile replica) and refuses it without secrets"

step "Every variable the service reads is set in docker-compose.yml, .env.example and the playbook's template"
python3 deploy/check_env.py
passed "wiring"

step "Base image: the Dockerfile's python:3.11-slim-bookworm, made locally with debootstrap if missing"
deploy/base-image.sh
passed "base image"

step "Image: podman builds the Dockerfile; it runs as a non-root user, has a HEALTHCHECK, holds no secret"
build_args=(--format docker --network host --tag "$IMAGE")
# A TLS-inspecting proxy between this machine and PyPI: give pip the machine's CA bundle, as a
# build secret (not stored in the image).
if [[ -s /etc/ssl/certs/ca-certificates.crt ]]; then
    build_args+=(--secret id=ca_bundle,src=/etc/ssl/certs/ca-certificates.crt)
fi
previous_image=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
podman build "${build_args[@]}" . >"$STATE/build.log" 2>&1 || {
    tail -n 40 "$STATE/build.log"
    fail "podman build"
}
# The image this build replaced: nothing uses it any more (the build cache lives in other layers).
if [[ -n "$previous_image" && "$previous_image" != "$(podman image inspect --format '{{.Id}}' "$IMAGE")" ]]; then
    podman rmi "$previous_image" >/dev/null 2>&1 || true
fi
user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
[[ "$user" == 10001:10001 ]] || fail "image user is '$user', expected 10001:10001"
health=$(podman image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE")
[[ "$health" == *"/app/deploy/healthcheck.py"* ]] || fail "no HEALTHCHECK in the image: $health"
image_env=$(podman image inspect --format '{{json .Config.Env}}' "$IMAGE")
if grep -Eq 'SECRET_KEY|DATABASE_URL|PASSWORD' <<<"$image_env"; then
    fail "the image's environment holds a setting that must come at run time: $image_env"
fi
if podman history --no-trunc --format '{{.CreatedBy}}' "$IMAGE" | grep -q "$SECRET_KEY_CHECK"; then
    fail "a secret leaked into the image history"
fi
passed "image $(podman image inspect --format '{{.Id}}' "$IMAGE" | cut -c1-12), $(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%d MB", $1/1e6}'), user $user"

step "Migrations: two migrate containers started at once on an empty database; one applies, the other waits"
psql_admin "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)"
psql_admin "DROP ROLE IF EXISTS $RUNTIME_ROLE"
psql_admin "CREATE DATABASE $DB_NAME"
psql_admin "CREATE ROLE $RUNTIME_ROLE LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
pids=()
for n in 1 2; do
    podman run --rm --name "wallet-deploy-check-migrate-$n" --no-healthcheck "${confined[@]}" "${app_env[@]}" \
        --entrypoint python "$IMAGE" manage.py migrate_locked --grant-runtime-role "$RUNTIME_ROLE" \
        >"$STATE/migrate-$n.log" 2>&1 &
    pids+=($!)
done
wait "${pids[0]}" || fail "migrate container 1: $(tail -n 5 "$STATE/migrate-1.log")"
wait "${pids[1]}" || fail "migrate container 2: $(tail -n 5 "$STATE/migrate-2.log")"
appliers=$(grep -l 'Applying wallets.0001_initial' "$STATE"/migrate-[12].log | wc -l)
waiters=$(grep -l 'No migrations to apply' "$STATE"/migrate-[12].log | wc -l)
((appliers == 1 && waiters == 1)) || fail "expected one container to apply and one to find nothing ($appliers, $waiters)"
grep -q "Granted $RUNTIME_ROLE data access" "$STATE/migrate-1.log" || fail "migrate did not grant the runtime role"
passed "both exited 0: one applied every migration, the other then found none to apply; both granted $RUNTIME_ROLE"

step "Least privilege: the runtime role cannot alter the ledger (UPDATE, DELETE, DROP TRIGGER, ALTER TABLE fail)"
"$PYTHON" - "$RUNTIME_URL_CHECK" <<'PY' || fail "the runtime role can do more than the API needs"
import sys

import psycopg
from psycopg import errors

with psycopg.connect(sys.argv[1], autocommit=True) as db:
    user, superuser = db.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    assert not superuser, f"{user} is a superuser"
    owned = db.execute("SELECT count(*) FROM pg_tables WHERE tableowner = current_user").fetchone()[0]
    assert owned == 0, f"{user} owns {owned} tables"
    db.execute("SELECT count(*) FROM wallets_operation")
    for statement in [
        "UPDATE wallets_operation SET amount = amount",
        "DELETE FROM wallets_operation",
        "TRUNCATE wallets_operation",
        "DROP TRIGGER wallets_operation_append_only ON wallets_operation",
        "ALTER TABLE wallets_operation DROP CONSTRAINT operation_amount_positive",
        "ALTER TABLE wallets_wallet DROP CONSTRAINT wallet_balance_not_negative",
        "CREATE TABLE runtime_made (id int)",
    ]:
        try:
            db.execute(statement)
        except errors.InsufficientPrivilege as error:
            print(f"    refused as {user}: {statement[:45]:45} ({str(error).splitlines()[0]})")
        else:
            raise AssertionError(f"{user} could run: {statement}")
PY
passed "as $RUNTIME_ROLE: not superuser, owns no table; every ledger change and DDL refused (the API works as it: next step)"

step "Configuration: check --deploy is clean with production values; a bad variable stops start-up, naming it"
production_env=(--env WALLET_SERVICE_ALLOWED_HOSTS=wallet.example.com --env WALLET_SERVICE_NUM_PROXIES=1
    --env WALLET_SERVICE_SECURE_SSL_REDIRECT=True --env WALLET_SERVICE_SECURE_HSTS_SECONDS=31536000
    --env WALLET_SERVICE_SECURE_HSTS_INCLUDE_SUBDOMAINS=True --env WALLET_SERVICE_SECURE_HSTS_PRELOAD=True
    --env WALLET_SERVICE_METRICS_TOKEN="$METRICS_TOKEN_CHECK")
podman run --rm --no-healthcheck "${confined[@]}" "${app_env[@]}" "${production_env[@]}" --entrypoint python \
    "$IMAGE" manage.py check --deploy --fail-level WARNING >"$STATE/check-deploy.log" 2>&1 ||
    fail "check --deploy: $(cat "$STATE/check-deploy.log")"
if podman run --rm --no-healthcheck "${confined[@]}" "${app_env[@]}" --env WALLET_SERVICE_WORKERS=0 \
    "$IMAGE" >"$STATE/bad-config.log" 2>&1; then
    fail "the server started with WALLET_SERVICE_WORKERS=0"
fi
grep -q 'WALLET_SERVICE_WORKERS' "$STATE/bad-config.log" || fail "$(cat "$STATE/bad-config.log")"
passed "check --deploy: $(tail -n 1 "$STATE/check-deploy.log"); $(grep -m1 'WALLET_SERVICE_WORKERS' "$STATE/bad-config.log")"

step "Service: the image serves the API as the runtime role; signup, wallet, deposit, charge, history, /status, /metrics"
WEB_PORT=$(free_port)
podman run --detach --name wallet-deploy-check-web "${confined[@]}" "${runtime_env[@]}" \
    --env HOST=127.0.0.1 --env PORT="$WEB_PORT" --env WALLET_SERVICE_WORKERS=2 \
    --env WALLET_SERVICE_METRICS_TOKEN="$METRICS_TOKEN_CHECK" "$IMAGE" >"$STATE/web-run.log" 2>&1 ||
    fail "$(cat "$STATE/web-run.log")"
for _ in $(seq 1 60); do
    curl --silent --fail --output /dev/null "http://127.0.0.1:$WEB_PORT/status" && break
    sleep 0.5
done
python3 deploy/smoke.py "http://127.0.0.1:$WEB_PORT" --metrics-token "$METRICS_TOKEN_CHECK" || {
    podman logs --tail 30 wallet-deploy-check-web
    fail "smoke test"
}
podman healthcheck run wallet-deploy-check-web || fail "the container's HEALTHCHECK says unhealthy"
# The container's output is JSON lines (granian's and the service's), requests logged with their id.
podman logs wallet-deploy-check-web >"$STATE/web.log" 2>&1
python3 - "$STATE/web.log" <<'PY' || fail "the container's log is not JSON lines with request ids"
import json
import sys

records = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
requests = [r for r in records if r.get("logger") == "wallet_service.request" and r.get("request_id")]
assert requests, "no request line with a request_id"
print(f"    {len(records)} log lines, all JSON; {len(requests)} request lines with a request_id")
PY
uid=$(podman exec wallet-deploy-check-web id -u)
[[ "$uid" == 10001 ]] || fail "the server runs as uid $uid"
passed "HTTP session as the contract says; JSON logs; HEALTHCHECK healthy; the server runs as uid $uid on a read-only root"

step "Health: with its database unreachable the service answers /status 503 and the HEALTHCHECK fails"
DOWN_PORT=$(free_port)
podman run --detach --name wallet-deploy-check-nodb "${confined[@]}" \
    --env "DATABASE_URL=postgres://postgres@127.0.0.1:$(free_port)/nowhere" \
    --env "WALLET_SERVICE_SECRET_KEY=$SECRET_KEY_CHECK" --env HOST=127.0.0.1 --env PORT="$DOWN_PORT" \
    --env WALLET_SERVICE_WORKERS=1 "$IMAGE" >"$STATE/nodb-run.log" 2>&1 || fail "$(cat "$STATE/nodb-run.log")"
code=000
for _ in $(seq 1 60); do
    code=$(curl --silent --output /dev/null --write-out '%{http_code}' "http://127.0.0.1:$DOWN_PORT/status" || true)
    [[ "$code" != 000 ]] && break
    sleep 0.5
done
[[ "$code" == 503 ]] || fail "/status answered $code without a database"
if podman healthcheck run wallet-deploy-check-nodb >/dev/null 2>&1; then
    fail "HEALTHCHECK says healthy without a database"
fi
podman rm --force --time 5 wallet-deploy-check-nodb >/dev/null 2>&1
passed "/status 503, container unhealthy"

step "Ansible: ansible-lint (production profile) and --syntax-check find nothing"
ansible-lint --offline ansible_deployment.yml
ansible-playbook -i localhost, --syntax-check ansible_deployment.yml
passed "$(ansible-lint --version | head -n 1)"

step "Ansible: the playbook deploys to this machine for real, twice; the second run changes nothing"
host_dir="$STATE/ansible-host/opt/wallet-service"
rm -rf "$STATE/ansible-host"
playbook=(ansible-playbook -i localhost, -c local ansible_deployment.yml -e @deploy/ansible-check-vars.yml
    -e "wallet_app_dir=$host_dir" -e "wallet_status_url=http://127.0.0.1:$WEB_PORT/status")
for run in 1 2; do
    "${playbook[@]}" >"$STATE/ansible-run-$run.log" 2>&1 || {
        tail -n 40 "$STATE/ansible-run-$run.log"
        fail "playbook run $run"
    }
    recap=$(grep -A1 'PLAY RECAP' "$STATE/ansible-run-$run.log" | tail -n 1)
    echo "    run $run: $recap"
    [[ "$recap" == *"failed=0"* && "$recap" == *"unreachable=0"* ]] || fail "run $run failed"
    if ((run == 1)); then
        [[ "$recap" != *" changed=0 "* ]] || fail "the first run on a fresh host changed nothing"
        secret_before=$(sha256sum "$host_dir/secrets/secret_key")
    fi
done
[[ "$recap" == *" changed=0 "* ]] || fail "the second run changed something: $(grep -E '^changed' "$STATE/ansible-run-2.log")"
[[ "$(sha256sum "$host_dir/secrets/secret_key")" == "$secret_before" ]] || fail "the secret key changed"
[[ "$(stat -c %a "$host_dir/.env")" == 600 ]] || fail ".env is not private"
for name in WALLET_SERVICE_SECRET_KEY POSTGRES_PASSWORD POSTGRES_APP_PASSWORD WALLET_SERVICE_METRICS_TOKEN; do
    grep -Eq "^$name='[A-Za-z0-9]{64}'$" "$host_dir/.env" || fail ".env has no generated $name"
done
"$compose" --project-directory "$host_dir/current" --env-file "$host_dir/.env" config --quiet ||
    fail "the deployed compose project does not validate with the rendered .env"
# A third run with the secret key from an Ansible Vault file: it replaces the generated one.
vault_key="vault-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$STATE/vault-password"
printf 'wallet_secret_key: %s\n' "$vault_key" >"$STATE/vault.yml"
ansible-vault encrypt --vault-password-file "$STATE/vault-password" "$STATE/vault.yml" >/dev/null
"${playbook[@]}" -e "@$STATE/vault.yml" --vault-password-file "$STATE/vault-password" >"$STATE/ansible-run-3.log" 2>&1 || {
    tail -n 40 "$STATE/ansible-run-3.log"
    fail "playbook run with a Vault file"
}
echo "    run 3 (Vault): $(grep -A1 'PLAY RECAP' "$STATE/ansible-run-3.log" | tail -n 1)"
grep -qx "WALLET_SERVICE_SECRET_KEY='$vault_key'" "$host_dir/.env" || fail "the Vault's secret key is not in .env"
passed "release shipped and unpacked, secrets generated once and kept, .env rendered (0600), /status awaited; Vault secret taken"

step "Compose: podman-compose brings docker-compose.yml up (db, migrate, web, worker); roles, /metrics, purges checked"
# Docker Hub's postgres:15 cannot be pulled here: a stand-in with Debian's PostgreSQL 15 and the same
# POSTGRES_* variables and init scripts takes its name, rebuilt when deploy/postgres-standin changes.
standin_hash=$(cat deploy/postgres-standin/* | sha256sum | cut -c1-16)
if [[ "$(podman image inspect --format '{{index .Labels "standin"}}' docker.io/library/postgres:15 2>/dev/null)" != "$standin_hash" ]]; then
    podman build --network host --label "standin=$standin_hash" --tag docker.io/library/postgres:15 deploy/postgres-standin \
        >"$STATE/postgres-standin-build.log" 2>&1 || {
        tail -n 30 "$STATE/postgres-standin-build.log"
        fail "building the postgres:15 stand-in"
    }
fi
podman tag "$IMAGE" localhost/wallet-service:latest
COMPOSE_PORT=$(free_port)
COMPOSE_APP_PASSWORD="compose-app-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
sed -e "s/^WALLET_SERVICE_SECRET_KEY=\$/WALLET_SERVICE_SECRET_KEY=$SECRET_KEY_CHECK/" \
    -e "s/^POSTGRES_PASSWORD=\$/POSTGRES_PASSWORD=compose-check-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')/" \
    -e "s/^POSTGRES_APP_PASSWORD=\$/POSTGRES_APP_PASSWORD=$COMPOSE_APP_PASSWORD/" \
    -e "s/^WALLET_SERVICE_PUBLISH=.*/WALLET_SERVICE_PUBLISH=127.0.0.1:$COMPOSE_PORT/" \
    -e "s/^WALLET_SERVICE_WORKERS=\$/WALLET_SERVICE_WORKERS=2/" .env.example >"$STATE/compose-run.env"
: >"$STATE/podman-compose.log"
podman_compose down --volumes || true
# podman 4.3 cannot wait for a health check (podman-compose ignores service_healthy there) and
# refuses to start a container whose required one-off dependency has exited: the check keeps the
# compose file's order itself, db healthy -> migrate exited 0 -> web.
wait_healthy() {
    for _ in $(seq 1 60); do
        podman healthcheck run "$1" >/dev/null 2>&1 && return 0
        sleep 1
    done
    fail "$1 never became healthy"
}
migrate_once() {
    podman_compose up --detach --no-deps migrate || fail "podman-compose up migrate"
    podman wait "${COMPOSE_PROJECT}_migrate_1" >/dev/null
    [[ "$(podman inspect --format '{{.State.ExitCode}}' "${COMPOSE_PROJECT}_migrate_1")" == 0 ]] ||
        fail "the migrate service failed: $(podman logs --tail 10 "${COMPOSE_PROJECT}_migrate_1" 2>&1)"
}
podman_compose up --detach db || fail "podman-compose up db: $(tail -n 20 "$STATE/podman-compose.log")"
wait_healthy "${COMPOSE_PROJECT}_db_1"
migrate_once
podman_compose up --detach --no-deps web worker || fail "podman-compose up web worker"
for _ in $(seq 1 60); do
    curl --silent --fail --output /dev/null "http://127.0.0.1:$COMPOSE_PORT/status" && break
    sleep 0.5
done
# No metrics token in .env.example: /metrics must be closed (403), not open.
python3 deploy/smoke.py "http://127.0.0.1:$COMPOSE_PORT" || {
    podman logs --tail 30 "${COMPOSE_PROJECT}_web_1"
    fail "smoke test through the compose project"
}
wait_healthy "${COMPOSE_PROJECT}_web_1"
# web and worker are connected as wallet_app only; as wallet_app the ledger cannot be changed.
db_psql() {
    podman exec --env PGPASSWORD="$COMPOSE_APP_PASSWORD" "${COMPOSE_PROJECT}_db_1" \
        psql --host=127.0.0.1 --username=wallet_app --dbname=wallet --no-psqlrc --tuples-only --no-align "$@"
}
users=$(db_psql -c "SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity
    WHERE datname = 'wallet' AND backend_type = 'client backend' AND pid <> pg_backend_pid()")
[[ "$users" == wallet_app ]] || fail "web and worker should be connected as wallet_app only, found: '$users'"
[[ "$(db_psql -c "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")" == f ]] || fail "wallet_app is a superuser"
for statement in "UPDATE wallets_operation SET amount = amount" "DELETE FROM wallets_operation" \
    "DROP TRIGGER wallets_operation_append_only ON wallets_operation" \
    "ALTER TABLE wallets_operation DROP CONSTRAINT operation_amount_positive"; do
    if db_psql -c "$statement" >"$STATE/compose-denied.log" 2>&1; then
        fail "wallet_app could run: $statement"
    fi
    grep -Eq 'permission denied|must be owner' "$STATE/compose-denied.log" || fail "$statement: $(cat "$STATE/compose-denied.log")"
done
# The worker ran both purges at start (JSON lines) and is still running.
for _ in $(seq 1 30); do
    podman logs "${COMPOSE_PROJECT}_worker_1" 2>&1 | grep -c '"message": "job done"' | grep -qx 2 && break
    sleep 1
done
podman logs "${COMPOSE_PROJECT}_worker_1" >"$STATE/worker.log" 2>&1
for job in purge_auth purge_idempotency_keys; do
    grep '"message": "job done"' "$STATE/worker.log" | grep -q "\"job\": \"$job\"" || fail "the worker did not run $job: $(tail -n 5 "$STATE/worker.log")"
done
[[ "$(podman inspect --format '{{.State.Running}}' "${COMPOSE_PROJECT}_worker_1")" == true ]] || fail "the worker exited"
# SIGTERM (what `docker compose stop` sends) stops it cleanly: exit status 0, a last log line.
podman stop --time 30 "${COMPOSE_PROJECT}_worker_1" >/dev/null
[[ "$(podman inspect --format '{{.State.ExitCode}}' "${COMPOSE_PROJECT}_worker_1")" == 0 ]] || fail "the worker did not exit 0 on SIGTERM"
podman logs "${COMPOSE_PROJECT}_worker_1" >"$STATE/worker.log" 2>&1
tail -n 1 "$STATE/worker.log" | grep -q '"message": "worker stopped"' || fail "the worker did not log its stop"
# Down and up again: the database lives in the named volume, so there is nothing left to migrate.
podman_compose down || fail "podman-compose down"
podman_compose up --detach db || fail "podman-compose up db (second time)"
wait_healthy "${COMPOSE_PROJECT}_db_1"
migrate_once
# Into a file first: grep -q would stop reading at its match, and podman logs' SIGPIPE fail the pipe.
podman logs "${COMPOSE_PROJECT}_migrate_1" >"$STATE/migrate-again.log" 2>&1
grep -q 'No migrations to apply' "$STATE/migrate-again.log" ||
    fail "the database did not survive down/up in its named volume: $(tail -n 5 "$STATE/migrate-again.log")"
podman_compose down --volumes || fail "podman-compose down --volumes"
passed "stack up, HTTP session passed as wallet_app (ledger changes refused), /metrics 403 without token, worker purged; web healthy; data survived down/up"

step "Compose profile replica: db-replica streams from db (pg_basebackup -R), web reads it and writes through PgBouncer"
# .env.example's profile lines, uncommented, with the runtime role's password written out.
sed -e 's/^#COMPOSE_PROFILES=/COMPOSE_PROFILES=/' -e 's/^#\(DATABASE_URL=\|WALLET_SERVICE_DATABASE_POOLER=\|WALLET_SERVICE_READ_REPLICA_URLS=\)/\1/' \
    -e "s/<POSTGRES_APP_PASSWORD>/$COMPOSE_APP_PASSWORD/g" -e '/^DATABASE_URL=$/d' -e '/^WALLET_SERVICE_DATABASE_POOLER=$/d' \
    -e '/^WALLET_SERVICE_READ_REPLICA_URLS=$/d' "$STATE/compose-run.env" >"$STATE/compose-replica-run.env"
cp "$STATE/compose-replica-run.env" "$STATE/compose-run.env"  # podman_compose (and cleanup) read this one
podman_compose --profile replica build pgbouncer || fail "building the pgbouncer image: $(tail -n 20 "$STATE/podman-compose.log")"
podman_compose --profile replica up --detach db || fail "podman-compose up db"
wait_healthy "${COMPOSE_PROJECT}_db_1"
migrate_once
podman_compose --profile replica up --detach --no-deps db-replica pgbouncer || fail "podman-compose up db-replica pgbouncer"
wait_healthy "${COMPOSE_PROJECT}_db-replica_1"
podman_compose --profile replica up --detach --no-deps web worker || fail "podman-compose up web worker"
for _ in $(seq 1 60); do
    curl --silent --fail --output /dev/null "http://127.0.0.1:$COMPOSE_PORT/status" && break
    sleep 0.5
done
python3 deploy/smoke.py "http://127.0.0.1:$COMPOSE_PORT" || {
    podman logs --tail 30 "${COMPOSE_PROJECT}_web_1"
    fail "smoke test through PgBouncer, with the replica"
}
replica_psql() {
    podman exec --env PGPASSWORD="$COMPOSE_APP_PASSWORD" "${COMPOSE_PROJECT}_db_1" \
        psql --host="$1" --port="$2" --username=wallet_app --dbname=wallet --no-psqlrc --tuples-only --no-align -c "$3"
}
# pg_stat_replication's state is shown to superusers only: asked as the owner, over db's local socket.
[[ "$(podman exec "${COMPOSE_PROJECT}_db_1" psql --username=wallet --dbname=wallet --no-psqlrc --tuples-only --no-align \
    -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" == 1 ]] || fail "db-replica is not streaming from db"
[[ "$(replica_psql db-replica 5432 "SELECT pg_is_in_recovery()")" == t ]] || fail "db-replica is not a standby"
# What the smoke test wrote through PgBouncer reached the replica; web holds connections to it.
[[ "$(replica_psql db-replica 5432 "SELECT count(*) > 0 FROM wallets_operation")" == t ]] || fail "db-replica has no operations"
replica_psql db-replica 5432 "SELECT count(*) FROM pg_stat_activity WHERE usename = 'wallet_app' AND pid <> pg_backend_pid()" |
    grep -qvx 0 || fail "web never connected to db-replica"
[[ "$(replica_psql pgbouncer 6432 "SELECT current_setting('port')")" == 5432 ]] || fail "pgbouncer does not reach db"
podman_compose --profile replica down --volumes || fail "podman-compose down --volumes (profile replica)"
podman untag "$IMAGE" localhost/wallet-service:latest
passed "db-replica streaming and read by web, writes through PgBouncer (transaction mode), smoke test passed"

echo
echo "deploy-check passed: $STEP steps in $((SECONDS - STARTED)) s"
