#!/usr/bin/env bash
# Debian's pgbouncer, for the test that runs the service through PgBouncer in transaction pooling mode
# (wallet_service/tests/test_pgbouncer.py). Does nothing when pgbouncer is already there.
set -euo pipefail

if command -v pgbouncer >/dev/null 2>&1 || [[ -x /usr/sbin/pgbouncer ]]; then
    exit 0
fi
if [[ "$(id -u)" -ne 0 ]]; then
    exec sudo "$0" "$@"
fi
echo "pgbouncer is missing; installing Debian's pgbouncer"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null
# The package starts a system pgbouncer on port 6432; the test starts its own, so stop that one.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet pgbouncer 2>/dev/null; then
    systemctl stop pgbouncer || true
fi
command -v pgbouncer || ls /usr/sbin/pgbouncer
