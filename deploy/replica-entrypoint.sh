#!/bin/sh
# The db-replica service (compose profile "replica", docs/SCALING.md). First start: copy db with
# pg_basebackup -R, which also writes the connection it follows (primary_conninfo), into the empty
# volume. Every start: run PostgreSQL as a hot standby streaming from db, read-only.
set -eu
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    echo "db-replica: copying db with pg_basebackup"
    PGPASSWORD="$POSTGRES_PASSWORD" pg_basebackup --host=db --port=5432 --username="${POSTGRES_USER:-postgres}" \
        --pgdata="$PGDATA" --write-recovery-conf --wal-method=stream --checkpoint=fast
fi
chmod 0700 "$PGDATA"
exec postgres -c listen_addresses='*' -c hot_standby=on
