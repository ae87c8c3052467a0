#!/bin/sh
# First start: initialise $PGDATA with POSTGRES_USER (superuser, password POSTGRES_PASSWORD) and
# create POSTGRES_DB, then run /docker-entrypoint-initdb.d's *.sh and *.sql as the real image does,
# with a server that listens on no TCP port meanwhile. Then run PostgreSQL.
set -eu
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
user="${POSTGRES_USER:-postgres}"
database="${POSTGRES_DB:-$user}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    password_file=$(mktemp)
    printf '%s' "$POSTGRES_PASSWORD" >"$password_file"
    initdb --username="$user" --pwfile="$password_file" --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$password_file"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    pg_ctl --wait --options="-c listen_addresses=''" start >/dev/null
    if [ "$database" != postgres ]; then
        createdb --username="$user" "$database"
    fi
    for script in /docker-entrypoint-initdb.d/*; do
        case "$script" in
            *.sh) POSTGRES_USER="$user" POSTGRES_DB="$database" sh "$script" ;;
            *.sql) psql -v ON_ERROR_STOP=1 --username="$user" --dbname="$database" --file="$script" ;;
        esac
    done
    pg_ctl --wait --mode=fast stop >/dev/null
fi
exec postgres -c listen_addresses='*'
