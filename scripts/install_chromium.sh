#!/usr/bin/env bash
# Debian's chromium (and a font), for the test that loads /docs in a real browser
# (wallet_service/tests/test_docs_page.py). Does nothing when chromium is already there.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [[ "$(id -u)" -ne 0 ]]; then
    exec sudo "$0" "$@"
fi
echo "chromium is missing; installing Debian's chromium"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium
