"""Configuration from the environment: defaults, parsing, and refusal of bad values naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest

from wallet_service.config import BASE_DIR, ConfigError, ThrottleRate, load_config

SECRET = {"WALLET_SERVICE_SECRET_KEY": "k" * 50}


def test_defaults_are_production_safe():
    config = load_config(SECRET)
    assert config.debug is False
    assert config.log_level == "info"
    assert config.allowed_hosts == ("localhost", "127.0.0.1")
    assert config.allowed_origins == ("http://localhost:8000", "http://127.0.0.1:8000")
    assert config.auth_token_expiration == timedelta(hours=24)
    assert config.max_wallets_by_client == 0
    assert config.refused_attempts_per_hour == 0  # the published 402 behaviour, unless the operator opts in
    assert config.workers == 2 * (os.cpu_count() or 1) + 1
    assert config.auth_throttle_rate == ThrottleRate(20, 60)
    assert config.num_proxies == 0
    assert config.database_url is None
    assert config.metrics_token is None
    assert config.metrics_public is False
    assert config.admin_enabled is True
    assert (config.read_replica_urls, config.database_pooler) == ((), None)
    assert (config.secure_ssl_redirect, config.secure_hsts_seconds, config.secure_cookies) == (False, 0, True)
    assert (config.secure_hsts_include_subdomains, config.secure_hsts_preload) == (False, False)


def test_secret_key_is_required_when_debug_is_off():
    with pytest.raises(ConfigError, match="WALLET_SERVICE_SECRET_KEY"):
        load_config({})
    assert load_config({"WALLET_SERVICE_DEBUG_MODE": "True"}).debug is True


def test_debug_mode_without_a_key_makes_a_random_one_shared_with_the_workers(monkeypatch):
    first, second = (load_config({"WALLET_SERVICE_DEBUG_MODE": "True"}).secret_key for _ in range(2))
    assert first != second and len(first) >= 50
    monkeypatch.delenv("WALLET_SERVICE_SECRET_KEY")
    monkeypatch.setenv("WALLET_SERVICE_DEBUG_MODE", "True")
    key = load_config().secret_key
    # The server's workers load the configuration again: they must sign with the same key.
    assert os.environ["WALLET_SERVICE_SECRET_KEY"] == key == load_config().secret_key


def test_every_variable_is_read():
    config = load_config(
        SECRET
        | {
            "WALLET_SERVICE_LOG_LEVEL": "DEBUG",
            "WALLET_SERVICE_DEBUG_MODE": "False",
            "WALLET_SERVICE_ALLOWED_HOSTS": "api.example.com  example.com",
            "WALLET_SERVICE_ALLOWED_ORIGINS": "https://shop.example.com http://localhost:3000",
            "WALLET_SERVICE_AUTH_TOKEN_EXPIRATION": "0.5",
            "WALLET_SERVICE_MAX_WALLETS_BY_CLIENT": "3",
            "WALLET_SERVICE_REFUSED_ATTEMPTS_PER_HOUR": "25",
            "WALLET_SERVICE_WORKERS": "7",
            "WALLET_SERVICE_AUTH_THROTTLE_RATE": "100/hour",
            "WALLET_SERVICE_NUM_PROXIES": "1",
            "DATABASE_URL": "postgres://u:p@db:5432/wallet",
        }
    )
    assert config.log_level == "debug"
    assert config.allowed_hosts == ("api.example.com", "example.com")
    assert config.allowed_origins == ("https://shop.example.com", "http://localhost:3000")
    assert config.auth_token_expiration == timedelta(minutes=30)
    assert config.max_wallets_by_client == 3
    assert config.refused_attempts_per_hour == 25
    assert config.workers == 7
    assert config.auth_throttle_rate == ThrottleRate(100, 3600)
    assert config.num_proxies == 1
    assert config.database_url == "postgres://u:p@db:5432/wallet"


def test_throttle_can_be_switched_off():
    assert load_config(SECRET | {"WALLET_SERVICE_AUTH_THROTTLE_RATE": "off"}).auth_throttle_rate is None


def test_empty_values_mean_default():
    assert load_config(SECRET | {"WALLET_SERVICE_LOG_LEVEL": "", "WALLET_SERVICE_WORKERS": " "}).log_level == "info"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WALLET_SERVICE_LOG_LEVEL", "verbose"),
        ("WALLET_SERVICE_DEBUG_MODE", "maybe"),
        ("WALLET_SERVICE_ALLOWED_ORIGINS", "shop.example.com"),
        ("WALLET_SERVICE_ALLOWED_ORIGINS", "https://shop.example.com/path"),
        ("WALLET_SERVICE_AUTH_TOKEN_EXPIRATION", "0"),
        ("WALLET_SERVICE_AUTH_TOKEN_EXPIRATION", "-1"),
        ("WALLET_SERVICE_AUTH_TOKEN_EXPIRATION", "ten"),
        ("WALLET_SERVICE_AUTH_TOKEN_EXPIRATION", "NaN"),
        ("WALLET_SERVICE_AUTH_TOKEN_EXPIRATION", "Infinity"),
        ("WALLET_SERVICE_AUTH_TOKEN_EXPIRATION", "1e100"),
        ("WALLET_SERVICE_MAX_WALLETS_BY_CLIENT", "-1"),
        ("WALLET_SERVICE_MAX_WALLETS_BY_CLIENT", "2.5"),
        ("WALLET_SERVICE_MAX_WALLETS_BY_CLIENT", "many"),
        ("WALLET_SERVICE_REFUSED_ATTEMPTS_PER_HOUR", "-1"),
        ("WALLET_SERVICE_REFUSED_ATTEMPTS_PER_HOUR", "ten"),
        ("WALLET_SERVICE_WORKERS", "0"),
        ("WALLET_SERVICE_WORKERS", "-3"),
        ("WALLET_SERVICE_AUTH_THROTTLE_RATE", "20"),
        ("WALLET_SERVICE_AUTH_THROTTLE_RATE", "20/fortnight"),
        ("WALLET_SERVICE_AUTH_THROTTLE_RATE", "0/minute"),
        ("WALLET_SERVICE_AUTH_THROTTLE_RATE", "x/minute"),
        ("WALLET_SERVICE_NUM_PROXIES", "-1"),
        ("DATABASE_URL", "mysql://root@localhost/wallet"),
        ("WALLET_SERVICE_METRICS_TOKEN", "too-short"),
        ("WALLET_SERVICE_METRICS_TOKEN", "with a space 0123456789"),
        ("WALLET_SERVICE_METRICS_TOKEN", 'quote"0123456789abcdef'),
        ("WALLET_SERVICE_METRICS_TOKEN", "x" * 257),
        ("WALLET_SERVICE_SECURE_SSL_REDIRECT", "yes please"),
        ("WALLET_SERVICE_SECURE_HSTS_SECONDS", "-1"),
        ("WALLET_SERVICE_SECURE_HSTS_SECONDS", "1y"),
        ("WALLET_SERVICE_SECURE_HSTS_SECONDS", "63072001"),
        ("WALLET_SERVICE_SECURE_HSTS_INCLUDE_SUBDOMAINS", "sometimes"),
        ("WALLET_SERVICE_SECURE_COOKIES", "2"),
        ("WALLET_SERVICE_ADMIN_ENABLED", "nope"),
        ("WALLET_SERVICE_METRICS_PUBLIC", "open"),
        ("WALLET_SERVICE_READ_REPLICA_URLS", "mysql://root@replica/wallet"),
        ("WALLET_SERVICE_READ_REPLICA_URLS", "postgres://u@replica:5432/wallet replica:5432"),
        ("WALLET_SERVICE_READ_REPLICA_URLS", "postgres://u@replica:5432/"),
        ("WALLET_SERVICE_READ_REPLICA_URLS", "postgres://u@replica:port/wallet"),
        ("WALLET_SERVICE_READ_REPLICA_URLS", "postgres://r1/wallet postgres://r1/wallet"),
        ("WALLET_SERVICE_DATABASE_POOLER", "pgpool"),
    ],
)
def test_invalid_value_is_refused_naming_the_variable(variable, value):
    with pytest.raises(ConfigError) as raised:
        load_config(SECRET | {variable: value})
    assert raised.value.variable == variable
    assert str(raised.value).startswith(f"{variable}:")


def run_python(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    clean_env = {key: value for key, value in os.environ.items() if not key.startswith("WALLET_SERVICE_")}
    return subprocess.run(
        [sys.executable, *args], cwd=BASE_DIR, env=clean_env | env, capture_output=True, text=True, timeout=60
    )


def test_manage_py_stops_at_start_up_with_a_message_naming_the_variable():
    result = run_python(["manage.py", "check"], SECRET | {"WALLET_SERVICE_MAX_WALLETS_BY_CLIENT": "-2"})
    assert result.returncode != 0
    assert "WALLET_SERVICE_MAX_WALLETS_BY_CLIENT" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("url", ["sqlite:////tmp/db.sqlite3", "sqlite:///db.sqlite3", "SQLite://"])
def test_a_sqlite_database_url_is_refused_saying_postgresql_is_required(url):
    with pytest.raises(ConfigError) as raised:
        load_config(SECRET | {"DATABASE_URL": url})
    assert raised.value.variable == "DATABASE_URL"
    assert "requires PostgreSQL" in str(raised.value)


def test_manage_py_and_the_server_stop_at_start_up_on_a_sqlite_database_url():
    env = SECRET | {"DATABASE_URL": "sqlite:////tmp/wallet.sqlite3"}
    result = run_python(["manage.py", "migrate"], env)
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr and "requires PostgreSQL" in result.stderr
    assert "Traceback" not in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "wallet_service.serve"],
        cwd=BASE_DIR,
        env={"PATH": os.environ["PATH"], "PORT": "0"} | env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr and "requires PostgreSQL" in result.stderr


def test_manage_py_without_secret_key_stops():
    result = run_python(["manage.py", "check"], {})
    assert result.returncode != 0
    assert "WALLET_SERVICE_SECRET_KEY" in result.stderr


def test_the_server_stops_before_starting_workers_on_a_bad_value():
    result = subprocess.run(
        [sys.executable, "-m", "wallet_service.serve"],
        cwd=BASE_DIR,
        env={"PATH": os.environ["PATH"]} | SECRET | {"WALLET_SERVICE_WORKERS": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "WALLET_SERVICE_WORKERS" in result.stderr
    assert "Spawning worker" not in result.stderr + result.stdout


def test_behind_trusted_proxies_the_forwarded_scheme_is_trusted():
    behind = run_python(["manage.py", "diffsettings"], SECRET | {"WALLET_SERVICE_NUM_PROXIES": "1"})
    direct = run_python(["manage.py", "diffsettings"], SECRET)
    assert "SECURE_PROXY_SSL_HEADER = ('HTTP_X_FORWARDED_PROTO', 'https')" in behind.stdout
    assert "SECURE_PROXY_SSL_HEADER" not in direct.stdout


TRANSPORT = {
    "WALLET_SERVICE_NUM_PROXIES": "1",
    "WALLET_SERVICE_SECURE_SSL_REDIRECT": "True",
    "WALLET_SERVICE_SECURE_HSTS_SECONDS": "31536000",
    "WALLET_SERVICE_SECURE_HSTS_INCLUDE_SUBDOMAINS": "True",
    "WALLET_SERVICE_SECURE_HSTS_PRELOAD": "True",
    "WALLET_SERVICE_SECURE_COOKIES": "False",
}


def test_metrics_token_and_transport_security_are_read():
    token = "0123456789abcdef-._~+/ABCDEFGH=="
    config = load_config(SECRET | TRANSPORT | {"WALLET_SERVICE_METRICS_TOKEN": token})
    assert config.metrics_token == token
    assert (config.secure_ssl_redirect, config.secure_hsts_seconds, config.secure_cookies) == (True, 31536000, False)
    assert (config.secure_hsts_include_subdomains, config.secure_hsts_preload) == (True, True)


@pytest.mark.parametrize(
    ("variable", "changes"),
    [
        # Without a trusted proxy every request looks like plain HTTP: the redirect would loop.
        ("WALLET_SERVICE_SECURE_SSL_REDIRECT", {"WALLET_SERVICE_NUM_PROXIES": "0"}),
        # Preload lists refuse a site without includeSubDomains or with less than a year.
        ("WALLET_SERVICE_SECURE_HSTS_PRELOAD", {"WALLET_SERVICE_SECURE_HSTS_INCLUDE_SUBDOMAINS": "False"}),
        ("WALLET_SERVICE_SECURE_HSTS_PRELOAD", {"WALLET_SERVICE_SECURE_HSTS_SECONDS": "31535999"}),
    ],
)
def test_transport_settings_that_cannot_work_together_are_refused(variable, changes):
    with pytest.raises(ConfigError) as raised:
        load_config(SECRET | TRANSPORT | changes)
    assert raised.value.variable == variable


def test_admin_switch_and_public_metrics_are_read():
    config = load_config(SECRET | {"WALLET_SERVICE_ADMIN_ENABLED": "False", "WALLET_SERVICE_METRICS_PUBLIC": "True"})
    assert (config.admin_enabled, config.metrics_public) == (False, True)


def test_public_metrics_and_a_metrics_token_are_refused_together():
    env = SECRET | {"WALLET_SERVICE_METRICS_PUBLIC": "True", "WALLET_SERVICE_METRICS_TOKEN": "0123456789abcdef0123"}
    with pytest.raises(ConfigError) as raised:
        load_config(env)
    assert raised.value.variable == "WALLET_SERVICE_METRICS_PUBLIC"


def test_manage_py_stops_on_a_bad_admin_switch_naming_it():
    result = run_python(["manage.py", "check"], SECRET | {"WALLET_SERVICE_ADMIN_ENABLED": "perhaps"})
    assert result.returncode != 0
    assert "WALLET_SERVICE_ADMIN_ENABLED" in result.stderr
    assert "Traceback" not in result.stderr


def test_read_replicas_and_the_pooler_are_read():
    config = load_config(
        SECRET
        | {
            "WALLET_SERVICE_READ_REPLICA_URLS": " postgres://u:p@replica-1:5432/wallet  postgresql://u@r2/wallet ",
            "WALLET_SERVICE_DATABASE_POOLER": "PgBouncer",
        }
    )
    assert config.read_replica_urls == ("postgres://u:p@replica-1:5432/wallet", "postgresql://u@r2/wallet")
    assert config.database_pooler == "pgbouncer"
    assert load_config(SECRET | {"WALLET_SERVICE_DATABASE_POOLER": "none"}).database_pooler is None


def test_a_bad_replica_url_is_refused_without_showing_its_password():
    with pytest.raises(ConfigError) as raised:
        load_config(SECRET | {"WALLET_SERVICE_READ_REPLICA_URLS": "mysql://user:hunter2@replica/wallet"})
    assert "hunter2" not in str(raised.value)
    assert "mysql://user:***@replica/wallet" in str(raised.value)


def test_manage_py_stops_on_a_bad_replica_url_naming_the_variable():
    result = run_python(["manage.py", "check"], SECRET | {"WALLET_SERVICE_READ_REPLICA_URLS": "replica:5432"})
    assert result.returncode != 0
    assert "WALLET_SERVICE_READ_REPLICA_URLS" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("rate", ["1/s", "5/sec", "7/second", "20/m", "20/min", "20/minute", "100/h", "3/hour", "9/d"])
def test_a_throttle_rate_means_what_drf_s_rate_parser_makes_of_it(rate):
    # config.py cannot call DRF's parser itself: rest_framework.throttling reads Django's settings when it is
    # imported, and config.py runs while those settings are being built (and in gunicorn's master, before
    # Django). DRF's parser is also laxer ("20/mud" is per minute, "0/m" and "-1/m" are taken); ours refuses
    # those, naming the variable, and agrees with DRF on every rate it accepts.
    from rest_framework.throttling import SimpleRateThrottle

    parsed = load_config(SECRET | {"WALLET_SERVICE_AUTH_THROTTLE_RATE": rate}).auth_throttle_rate
    assert (parsed.num_requests, parsed.period_seconds) == SimpleRateThrottle.parse_rate(None, rate)


def test_private_webhook_urls_are_refused_unless_allowed():
    assert load_config(SECRET).webhook_allow_private is False
    assert load_config(SECRET | {"WALLET_SERVICE_WEBHOOK_ALLOW_PRIVATE": "True"}).webhook_allow_private is True
    with pytest.raises(ConfigError) as raised:
        load_config(SECRET | {"WALLET_SERVICE_WEBHOOK_ALLOW_PRIVATE": "sometimes"})
    assert raised.value.variable == "WALLET_SERVICE_WEBHOOK_ALLOW_PRIVATE"
