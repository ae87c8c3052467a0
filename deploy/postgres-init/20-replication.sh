#!/bin/sh
# Mounted into the db service's /docker-entrypoint-initdb.d: run once, when the data volume is new.
# Lets the db-replica service of the compose profile "replica" (docs/SCALING.md) stream the WAL: a
# replication connection from the compose network, as the owner (POSTGRES_USER), with its password.
# Without the profile the line is unused: db publishes no port, and the password is still required.
# On an existing volume, run it by hand, then reload:
#   docker compose exec db sh /docker-entrypoint-initdb.d/20-replication.sh
#   docker compose exec db psql -U wallet -c 'SELECT pg_reload_conf()'
set -eu
line="host replication ${POSTGRES_USER:-postgres} all scram-sha-256"
grep -qxF "$line" "$PGDATA/pg_hba.conf" || echo "$line" >>"$PGDATA/pg_hba.conf"
