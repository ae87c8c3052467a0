"""/admin/: its login shares the API's login throttle, and WALLET_SERVICE_ADMIN_ENABLED=False removes it."""

from __future__ import annotations

import importlib

import pytest
from django.test import Client
from django.urls import clear_url_caches

from accounts.models import User
from wallet_service.config import ThrottleRate

PASSWORD = "s3cure-Passw0rd"


def admin_login(client: Client, password: str, **extra):
    return client.post(
        "/admin/login/", {"username": "support@example.com", "password": password, "next": "/admin/"}, **extra
    )


@pytest.fixture
def staff(db):
    return User.objects.create_superuser("support@example.com", PASSWORD)


@pytest.mark.django_db
def test_the_admin_login_is_throttled_per_ip_even_for_the_right_password(settings, staff):
    settings.WALLET_SERVICE_AUTH_THROTTLE_RATE = ThrottleRate(5, 60)
    client = Client()
    for _ in range(5):
        wrong = admin_login(client, "wrong-Passw0rd")
        assert wrong.status_code == 200  # the login form again, with its error
        assert b"Please enter the correct" in wrong.content
    refused = admin_login(client, "wrong-Passw0rd")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert b"Too many login attempts" in refused.content
    # Throttled, the right password is refused too: the password is not even checked.
    right = admin_login(client, PASSWORD)
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302  # still sent to the login page
    # Another address has its own budget, and the right password logs in there.
    other = Client(REMOTE_ADDR="10.9.8.7")
    assert admin_login(other, PASSWORD).status_code == 302
    assert other.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_admin_and_api_logins_share_one_budget(settings, staff, api_client):
    settings.WALLET_SERVICE_AUTH_THROTTLE_RATE = ThrottleRate(2, 60)
    assert api_client.post("/client/login", {"email": "x@example.com", "password": "y"}).status_code == 400
    assert admin_login(Client(), "wrong-Passw0rd").status_code == 200
    assert admin_login(Client(), PASSWORD).status_code == 429
    assert api_client.post("/client/login", {"email": "x@example.com", "password": "y"}).status_code == 429


@pytest.mark.django_db
def test_showing_the_login_page_is_not_an_attempt(settings, staff):
    settings.WALLET_SERVICE_AUTH_THROTTLE_RATE = ThrottleRate(1, 60)
    client = Client()
    assert all(client.get("/admin/login/").status_code == 200 for _ in range(3))
    assert admin_login(client, PASSWORD).status_code == 302


@pytest.fixture
def reload_urls():
    """Re-read wallet_service/urls.py under the test's settings, and again with the original ones after."""
    import wallet_service.urls

    def reload():
        importlib.reload(wallet_service.urls)
        clear_url_caches()

    yield reload
    reload()


@pytest.mark.django_db
def test_with_the_admin_switched_off_admin_is_404(settings, staff, reload_urls):
    settings.WALLET_SERVICE_ADMIN_ENABLED = False
    reload_urls()
    client = Client()
    for path in ("/admin/", "/admin/login/", "/admin/wallets/wallet/"):
        assert client.get(path).status_code == 404
    assert admin_login(client, PASSWORD).status_code == 404
    client.force_login(staff)
    assert client.get("/admin/").status_code == 404
    assert client.get("/status").status_code == 200


@pytest.mark.django_db
def test_the_admin_is_served_by_default(settings, staff, reload_urls):
    assert settings.WALLET_SERVICE_ADMIN_ENABLED is True
    reload_urls()
    assert Client().get("/admin/login/").status_code == 200


@pytest.mark.django_db
def test_the_admin_keeps_sessions_and_csrf_while_the_api_skips_them(staff, client_api):
    # Sessions, CSRF, the session's user and messages run for /admin/ only (AdminOnlyMiddleware).
    client = Client(enforce_csrf_checks=True)
    assert admin_login(client, PASSWORD).status_code == 403  # no CSRF token: refused
    form = client.get("/admin/login/")
    assert form.status_code == 200 and "csrftoken" in form.cookies
    logged_in = admin_login(client, PASSWORD, HTTP_X_CSRFTOKEN=form.cookies["csrftoken"].value)
    assert logged_in.status_code == 302
    assert client.session["_auth_user_id"] == str(staff.pk)
    assert client.get("/admin/").status_code == 200
    # The API sets no cookie and reads no session.
    answer = client_api.get("/wallet/list")
    assert answer.status_code == 200 and not answer.cookies
    assert "Cookie" not in answer.get("Vary", "")
