"""Production settings: `check --deploy` is clean with production variables; HTTPS behind a TLS proxy."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from wallet_service.config import BASE_DIR

PRODUCTION = {
    "WALLET_SERVICE_SECRET_KEY": "pr0duction-S3cret-key-with-enough-entropy-q8Zr2vXw7LmN4tYb",
    "WALLET_SERVICE_DEBUG_MODE": "False",
    "WALLET_SERVICE_ALLOWED_HOSTS": "wallet.example.com",
    "WALLET_SERVICE_ALLOWED_ORIGINS": "https://shop.example.com",
    "WALLET_SERVICE_NUM_PROXIES": "1",
    "WALLET_SERVICE_SECURE_SSL_REDIRECT": "True",
    "WALLET_SERVICE_SECURE_HSTS_SECONDS": "31536000",
    "WALLET_SERVICE_SECURE_HSTS_INCLUDE_SUBDOMAINS": "True",
    "WALLET_SERVICE_SECURE_HSTS_PRELOAD": "True",
    "WALLET_SERVICE_METRICS_TOKEN": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "DATABASE_URL": "postgres://wallet:secret@db:5432/wallet",
}


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean_env = {key: value for key, value in os.environ.items() if not key.startswith("WALLET_SERVICE_")}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=clean_env | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_is_clean_with_production_variables():
    result = check_deploy(PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_fails_on_what_production_must_decide():
    minimal = {"WALLET_SERVICE_SECRET_KEY": PRODUCTION["WALLET_SERVICE_SECRET_KEY"]}
    result = check_deploy(minimal)
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008"):
        assert warning in result.stderr
    # Without a token /metrics is closed, which needs no warning; opening it to everyone does.
    assert "wallet_service.W001" not in result.stderr
    opened = check_deploy(PRODUCTION | {"WALLET_SERVICE_METRICS_TOKEN": "", "WALLET_SERVICE_METRICS_PUBLIC": "True"})
    assert opened.returncode != 0
    assert "wallet_service.W001" in opened.stderr
    # Secure cookies are the default: only the admin uses cookies, and never over plain HTTP.
    assert "security.W012" not in result.stderr
    assert "security.W016" not in result.stderr


@pytest.fixture
def behind_tls_proxy(settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True


@pytest.mark.django_db
def test_plain_http_is_redirected_to_https_except_health_and_metrics(behind_tls_proxy, api_client):
    response = api_client.get("/wallet/list")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/wallet/list"
    # Container health checks and Prometheus reach the service directly, over plain HTTP.
    assert api_client.get("/status").status_code == 200
    assert api_client.get("/metrics").status_code == 200
    assert "Strict-Transport-Security" not in api_client.get("/status")


@pytest.mark.django_db
def test_https_through_the_proxy_is_served_with_hsts(behind_tls_proxy, api_client):
    response = api_client.get("/wallet/list", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 401
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
