#!/bin/sh
# Writes PgBouncer's configuration into /tmp (the container's root is read-only) from the environment,
# then runs it in the foreground: transaction pooling in front of db, for the runtime role only.
# PGBOUNCER_USER / PGBOUNCER_PASSWORD: the role clients log in as, and PgBouncer logs in to db as (SCRAM).
set -eu
: "${PGBOUNCER_USER:?PGBOUNCER_USER is required}"
: "${PGBOUNCER_PASSWORD:?PGBOUNCER_PASSWORD is required}"
dir=/tmp/pgbouncer
mkdir -p "$dir"
umask 077
printf '"%s" "%s"\n' "$PGBOUNCER_USER" "$PGBOUNCER_PASSWORD" >"$dir/userlist.txt"
cat >"$dir/pgbouncer.ini" <<INI
[databases]
${PGBOUNCER_DATABASE:-wallet} = host=${PGBOUNCER_SERVER_HOST:-db} port=${PGBOUNCER_SERVER_PORT:-5432} dbname=${PGBOUNCER_DATABASE:-wallet}
[pgbouncer]
listen_addr = 0.0.0.0
listen_port = 6432
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = ${PGBOUNCER_POOL_SIZE:-20}
max_client_conn = ${PGBOUNCER_MAX_CLIENT_CONN:-500}
server_reset_query =
ignore_startup_parameters = extra_float_digits
INI
exec pgbouncer "$dir/pgbouncer.ini"
