#!/bin/sh
# Mounted into the db service's /docker-entrypoint-initdb.d: run once, when the data volume is new.
# Creates the runtime role (wallet_app, password POSTGRES_APP_PASSWORD) that web and the worker
# connect as. It owns nothing and is no superuser; the migrate service, connected as the owner
# (POSTGRES_USER), grants it data access after each migration (manage.py grant_runtime_role).
# Idempotent: on an existing volume, run it by hand to add the role (deploy/README.md, Two database roles):
#   docker compose exec db sh /docker-entrypoint-initdb.d/10-runtime-role.sh
set -eu
: "${POSTGRES_APP_PASSWORD:?POSTGRES_APP_PASSWORD is required}"
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    -v role=wallet_app -v password="$POSTGRES_APP_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'role') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L',
              :'role', :'password') \gexec
-- PostgreSQL 15 already keeps everyone but the database owner from creating objects in public.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
