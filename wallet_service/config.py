"""Service configuration, read from the environment once and validated at start-up.

Every variable of the HTTP contract is parsed here. An invalid value raises ``ConfigError``
naming the variable, so that the process stops before it serves anything: the service never
runs half-configured. This module imports nothing from Django's runtime so that gunicorn's
configuration can validate the same variables before it forks workers.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
THROTTLE_RATE_RE = re.compile(r"(?P<num>[0-9]+)/(?P<period>s|sec|second|m|min|minute|h|hour|d|day)")
THROTTLE_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
INTEGER_RE = re.compile(r"[0-9]+")
# Ten years: a token lifetime beyond this is a typo, and beyond ~2.7 million years it overflows.
MAX_TOKEN_EXPIRATION_HOURS = Decimal(24 * 365 * 10)
# A bearer token as RFC 6750 spells it (b64token), long enough not to be guessed.
METRICS_TOKEN_RE = re.compile(r"[A-Za-z0-9\-._~+/]{16,256}=*")
# HSTS: browsers' preload lists want at least a year; more than two years is a typo.
HSTS_PRELOAD_MIN_SECONDS = 365 * 24 * 3600
HSTS_MAX_SECONDS = 2 * 365 * 24 * 3600


class ConfigError(Exception):
    """A configuration variable holds a value the service cannot run with."""

    def __init__(self, variable: str, message: str):
        self.variable = variable
        super().__init__(f"{variable}: {message}")


@dataclass(frozen=True)
class ThrottleRate:
    num_requests: int
    period_seconds: int

    def __str__(self) -> str:
        return f"{self.num_requests}/{self.period_seconds}s"


@dataclass(frozen=True)
class Config:
    log_level: str
    secret_key: str
    debug: bool
    allowed_hosts: tuple[str, ...]
    allowed_origins: tuple[str, ...]
    auth_token_expiration: timedelta
    max_wallets_by_client: int
    refused_attempts_per_hour: int
    workers: int
    auth_throttle_rate: ThrottleRate | None
    num_proxies: int
    database_url: str | None
    read_replica_urls: tuple[str, ...]
    database_pooler: str | None
    metrics_token: str | None
    metrics_public: bool
    admin_enabled: bool
    secure_ssl_redirect: bool
    secure_hsts_seconds: int
    secure_hsts_include_subdomains: bool
    secure_hsts_preload: bool
    secure_cookies: bool
    webhook_allow_private: bool


def _get(env: Mapping[str, str], name: str) -> str | None:
    """The variable's value, or None when it is unset or empty (an empty value means "default")."""
    value = env.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def parse_log_level(value: str | None) -> str:
    if value is None:
        return "info"
    if value.lower() not in LOG_LEVELS:
        raise ConfigError("WALLET_SERVICE_LOG_LEVEL", f"{value!r} is not one of {', '.join(LOG_LEVELS)}")
    return value.lower()


def parse_bool(name: str, value: str | None, default: bool) -> bool:
    if value is None:
        return default
    lowered = value.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ConfigError(name, f"{value!r} is not a boolean; use True or False")


def parse_non_negative_int(name: str, value: str | None, default: int) -> int:
    if value is None:
        return default
    if not INTEGER_RE.fullmatch(value):
        raise ConfigError(name, f"{value!r} is not a whole number of zero or more")
    return int(value)


def parse_workers(value: str | None) -> int:
    default = 2 * (os.cpu_count() or 1) + 1
    workers = parse_non_negative_int("WALLET_SERVICE_WORKERS", value, default)
    if workers < 1:
        raise ConfigError("WALLET_SERVICE_WORKERS", f"{value!r}: at least one worker is needed")
    return workers


def parse_token_expiration(value: str | None) -> timedelta:
    name = "WALLET_SERVICE_AUTH_TOKEN_EXPIRATION"
    if value is None:
        return timedelta(hours=24)
    try:
        hours = Decimal(value)
    except InvalidOperation:
        raise ConfigError(name, f"{value!r} is not a number of hours") from None
    if not hours.is_finite() or hours <= 0:
        raise ConfigError(name, f"{value!r} must be a number of hours above zero")
    if hours > MAX_TOKEN_EXPIRATION_HOURS:
        raise ConfigError(name, f"{value!r} hours is more than ten years")
    seconds = hours * 3600
    if seconds < 1:
        raise ConfigError(name, f"{value!r} hours is less than one second")
    return timedelta(seconds=float(seconds))


def parse_throttle_rate(value: str | None) -> ThrottleRate | None:
    name = "WALLET_SERVICE_AUTH_THROTTLE_RATE"
    if value is None:
        return ThrottleRate(20, 60)
    if value.lower() == "off":
        return None
    match = THROTTLE_RATE_RE.fullmatch(value)
    if match is None or int(match["num"]) < 1:
        raise ConfigError(name, f"{value!r} is not a rate like '20/minute' (per second, minute, hour or day) or 'off'")
    return ThrottleRate(int(match["num"]), THROTTLE_PERIODS[match["period"][0]])


def parse_hosts(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ("localhost", "127.0.0.1")
    return tuple(value.split())


def parse_origins(value: str | None) -> tuple[str, ...]:
    name = "WALLET_SERVICE_ALLOWED_ORIGINS"
    if value is None:
        return ("http://localhost:8000", "http://127.0.0.1:8000")
    origins = tuple(value.split())
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query or parts.fragment:
            raise ConfigError(name, f"{origin!r} is not an origin like 'https://shop.example.com'")
    return origins


def parse_database_url(value: str | None) -> str | None:
    """A PostgreSQL URL, or None: the embedded PostgreSQL of `make run` (wallet_service/embedded_db.py)."""
    if value is None:
        return None
    scheme = urlsplit(value).scheme
    if scheme.startswith("sqlite"):
        raise ConfigError(
            "DATABASE_URL",
            f"{scheme}:// is not supported: the service requires PostgreSQL (postgres://user:pass@host:5432/name); "
            "leave DATABASE_URL unset for the embedded PostgreSQL of `make run`",
        )
    if scheme not in ("postgres", "postgresql", "pgsql"):
        raise ConfigError(
            "DATABASE_URL", f"scheme {scheme!r} is not supported; PostgreSQL is required: use postgres://"
        )
    return value


def parse_read_replica_urls(value: str | None) -> tuple[str, ...]:
    """Space-separated PostgreSQL URLs of streaming replicas, each naming a host and a database."""
    name = "WALLET_SERVICE_READ_REPLICA_URLS"
    if value is None:
        return ()
    urls = tuple(value.split())
    for url in urls:
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018  (raises ValueError on a port that is not a number)
        except ValueError:
            raise ConfigError(name, f"{_redacted(url)!r} has an invalid port") from None
        if parts.scheme not in ("postgres", "postgresql") or not parts.hostname or not parts.path.strip("/"):
            raise ConfigError(
                name, f"{_redacted(url)!r} is not a PostgreSQL URL like postgres://user:pass@replica:5432/wallet"
            )
    if len(set(urls)) != len(urls):
        raise ConfigError(name, "lists the same replica twice")
    return urls


def _redacted(url: str) -> str:
    """``url`` without its password, for an error message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


DATABASE_POOLERS = ("none", "pgbouncer")


def parse_database_pooler(value: str | None) -> str | None:
    """What DATABASE_URL reaches: PostgreSQL itself (``none``) or PgBouncer in transaction pooling mode."""
    if value is None or value.lower() == "none":
        return None
    if value.lower() not in DATABASE_POOLERS:
        raise ConfigError(
            "WALLET_SERVICE_DATABASE_POOLER",
            f"{value!r} is not one of {', '.join(DATABASE_POOLERS)} (pgbouncer: DATABASE_URL is a PgBouncer "
            "in transaction pooling mode)",
        )
    return value.lower()


def parse_metrics_token(value: str | None) -> str | None:
    if value is not None and not METRICS_TOKEN_RE.fullmatch(value):
        raise ConfigError(
            "WALLET_SERVICE_METRICS_TOKEN",
            "must be 16 to 256 characters of letters, digits and -._~+/ (e.g. from `openssl rand -hex 32`)",
        )
    return value


def parse_metrics_public(value: str | None, metrics_token: str | None) -> bool:
    name = "WALLET_SERVICE_METRICS_PUBLIC"
    public = parse_bool(name, value, default=False)
    if public and metrics_token is not None:
        raise ConfigError(name, "cannot be True while WALLET_SERVICE_METRICS_TOKEN is set; choose one")
    return public


@dataclass(frozen=True)
class TransportSecurity:
    ssl_redirect: bool
    hsts_seconds: int
    hsts_include_subdomains: bool
    hsts_preload: bool
    secure_cookies: bool


def parse_transport_security(env: Mapping[str, str], num_proxies: int) -> TransportSecurity:
    """TLS-related settings for a service that sees HTTPS only through a TLS-terminating proxy."""
    redirect_name = "WALLET_SERVICE_SECURE_SSL_REDIRECT"
    ssl_redirect = parse_bool(redirect_name, _get(env, redirect_name), default=False)
    if ssl_redirect and num_proxies < 1:
        # Without a trusted proxy every request looks like plain HTTP: each would be redirected forever.
        raise ConfigError(
            redirect_name, "needs WALLET_SERVICE_NUM_PROXIES of 1 or more (the proxy's X-Forwarded-Proto says https)"
        )
    hsts_name = "WALLET_SERVICE_SECURE_HSTS_SECONDS"
    hsts_seconds = parse_non_negative_int(hsts_name, _get(env, hsts_name), default=0)
    if hsts_seconds > HSTS_MAX_SECONDS:
        raise ConfigError(hsts_name, f"{hsts_seconds} is more than two years ({HSTS_MAX_SECONDS})")
    subdomains_name = "WALLET_SERVICE_SECURE_HSTS_INCLUDE_SUBDOMAINS"
    subdomains = parse_bool(subdomains_name, _get(env, subdomains_name), default=False)
    preload_name = "WALLET_SERVICE_SECURE_HSTS_PRELOAD"
    preload = parse_bool(preload_name, _get(env, preload_name), default=False)
    if preload and (not subdomains or hsts_seconds < HSTS_PRELOAD_MIN_SECONDS):
        raise ConfigError(
            preload_name,
            f"needs WALLET_SERVICE_SECURE_HSTS_INCLUDE_SUBDOMAINS=True and WALLET_SERVICE_SECURE_HSTS_SECONDS of "
            f"at least {HSTS_PRELOAD_MIN_SECONDS} (one year), as browsers' preload lists require",
        )
    cookies_name = "WALLET_SERVICE_SECURE_COOKIES"
    return TransportSecurity(
        ssl_redirect=ssl_redirect,
        hsts_seconds=hsts_seconds,
        hsts_include_subdomains=subdomains,
        hsts_preload=preload,
        secure_cookies=parse_bool(cookies_name, _get(env, cookies_name), default=True),
    )


def load_config(env: Mapping[str, str] | None = None) -> Config:
    """Parse and validate every configuration variable; raise ConfigError on the first bad one."""
    env = os.environ if env is None else env
    debug = parse_bool("WALLET_SERVICE_DEBUG_MODE", _get(env, "WALLET_SERVICE_DEBUG_MODE"), default=False)
    secret_key = _get(env, "WALLET_SERVICE_SECRET_KEY")
    if secret_key is None:
        if not debug:
            raise ConfigError("WALLET_SERVICE_SECRET_KEY", "is required when WALLET_SERVICE_DEBUG_MODE is False")
        # A random key, never a fixed one that anyone reading this file could sign sessions and cursors
        # with. Put in the environment so that the server's workers, started after this, share it.
        secret_key = secrets.token_urlsafe(50)
        if env is os.environ:
            os.environ["WALLET_SERVICE_SECRET_KEY"] = secret_key
    num_proxies = parse_non_negative_int("WALLET_SERVICE_NUM_PROXIES", _get(env, "WALLET_SERVICE_NUM_PROXIES"), 0)
    transport = parse_transport_security(env, num_proxies)
    metrics_token = parse_metrics_token(_get(env, "WALLET_SERVICE_METRICS_TOKEN"))
    return Config(
        log_level=parse_log_level(_get(env, "WALLET_SERVICE_LOG_LEVEL")),
        secret_key=secret_key,
        debug=debug,
        allowed_hosts=parse_hosts(_get(env, "WALLET_SERVICE_ALLOWED_HOSTS")),
        allowed_origins=parse_origins(_get(env, "WALLET_SERVICE_ALLOWED_ORIGINS")),
        auth_token_expiration=parse_token_expiration(_get(env, "WALLET_SERVICE_AUTH_TOKEN_EXPIRATION")),
        max_wallets_by_client=parse_non_negative_int(
            "WALLET_SERVICE_MAX_WALLETS_BY_CLIENT", _get(env, "WALLET_SERVICE_MAX_WALLETS_BY_CLIENT"), default=0
        ),
        refused_attempts_per_hour=parse_non_negative_int(
            "WALLET_SERVICE_REFUSED_ATTEMPTS_PER_HOUR",
            _get(env, "WALLET_SERVICE_REFUSED_ATTEMPTS_PER_HOUR"),
            # Off unless the operator opts in: the API's published behaviour is a recorded 402 for every
            # charge or hold the wallet cannot cover; the 429 of this limit is an extension to it.
            default=0,
        ),
        workers=parse_workers(_get(env, "WALLET_SERVICE_WORKERS")),
        auth_throttle_rate=parse_throttle_rate(_get(env, "WALLET_SERVICE_AUTH_THROTTLE_RATE")),
        num_proxies=num_proxies,
        database_url=parse_database_url(_get(env, "DATABASE_URL")),
        read_replica_urls=parse_read_replica_urls(_get(env, "WALLET_SERVICE_READ_REPLICA_URLS")),
        database_pooler=parse_database_pooler(_get(env, "WALLET_SERVICE_DATABASE_POOLER")),
        metrics_token=metrics_token,
        metrics_public=parse_metrics_public(_get(env, "WALLET_SERVICE_METRICS_PUBLIC"), metrics_token),
        admin_enabled=parse_bool(
            "WALLET_SERVICE_ADMIN_ENABLED", _get(env, "WALLET_SERVICE_ADMIN_ENABLED"), default=True
        ),
        secure_ssl_redirect=transport.ssl_redirect,
        secure_hsts_seconds=transport.hsts_seconds,
        secure_hsts_include_subdomains=transport.hsts_include_subdomains,
        secure_hsts_preload=transport.hsts_preload,
        secure_cookies=transport.secure_cookies,
        webhook_allow_private=parse_bool(
            "WALLET_SERVICE_WEBHOOK_ALLOW_PRIVATE", _get(env, "WALLET_SERVICE_WEBHOOK_ALLOW_PRIVATE"), default=False
        ),
    )
