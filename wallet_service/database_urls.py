"""PostgreSQL URLs, written and read in one place.

A URL's host may be a Unix socket directory (the embedded server's is ``…/var/pgrun``): written into a
URL as is, ``postgres://user@/work/x/var/pgrun:5432/name`` reads back as an empty host and a database
named ``work/x/var/pgrun:5432/name``, and a client given an empty host falls back to libpq's default
socket, another server's. So every URL the project builds from parts comes from :func:`database_url`
(each part percent-encoded, as libpq and dj-database-url decode them), and every URL it takes apart
goes through :func:`connection_parameters` (libpq's own parser). This module imports nothing from Django.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from psycopg.conninfo import conninfo_to_dict


def database_url(
    *, host: str = "", port: int | str | None = None, user: str = "", password: str = "", name: str
) -> str:
    """``postgres://user:password@host:port/name``; ``host`` a name, an address, a socket directory, or empty
    (libpq's default)."""
    ipv6 = ":" in host and not host.startswith("/")
    location = f"[{host}]" if ipv6 else quote(host, safe="")
    if port:
        location += f":{port}"
    credentials = quote(user, safe="")
    if password:
        credentials += ":" + quote(password, safe="")
    return f"postgres://{credentials + '@' if credentials else ''}{location}/{quote(name, safe='')}"


def settings_url(settings: Mapping, *, user: str | None = None, name: str | None = None) -> str:
    """The URL of a Django connection's ``settings_dict`` (another ``user`` or database ``name`` if given):
    e.g. ``DATABASE_URL`` for a process started by a test, on the test database."""
    return database_url(
        host=settings["HOST"] or "",
        port=settings["PORT"],
        user=settings["USER"] if user is None else user,
        password="" if user is not None else settings.get("PASSWORD") or "",
        name=settings["NAME"] if name is None else name,
    )


def connection_parameters(url: str) -> dict[str, str]:
    """A URL's ``host``, ``port``, ``user``, ``password`` and ``dbname`` (those it has) as libpq reads them."""
    return conninfo_to_dict(url)
