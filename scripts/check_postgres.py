"""Say plainly whether the PostgreSQL server of DATABASE_URL can be reached (exit 0) or not (exit 2)."""

import os
import sys

import dj_database_url
import psycopg

url = os.environ.get("DATABASE_URL", "")
settings = dj_database_url.parse(url) if url else {}
if settings.get("ENGINE") != "django.db.backends.postgresql":
    sys.exit(f"The test suite runs on PostgreSQL; DATABASE_URL={url!r} is not a postgres:// URL.")
host, port = settings.get("HOST") or "localhost", settings.get("PORT") or 5432
try:
    psycopg.connect(
        host=host,
        port=port,
        user=settings.get("USER") or None,
        password=settings.get("PASSWORD") or None,
        dbname="postgres",
        connect_timeout=5,
    ).close()
except psycopg.Error as error:
    print(
        f"PostgreSQL is not reachable at {host}:{port} ({str(error).strip().splitlines()[0]}).\n"
        "Start it (e.g. `pg_ctlcluster --skip-systemctl-redirect 15 main start`) or point DATABASE_URL "
        "at a running server, e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/wallet_service make test",
        file=sys.stderr,
    )
    sys.exit(2)
