from __future__ import annotations

import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts.models import ThrottleBucket
from accounts.tests.factories import ClientFactory
from wallet_service.config import ThrottleRate
from wallet_service.tests.utils import assert_problem, on_another_connection, race


def signup(api_client, n: int, **extra):
    body = {
        "email": f"user{n}@example.com",
        "password": "s3cure-Passw0rd",
        "client": {"first_name": "Ana", "last_name": "García", "phone_number": "+34666666666"},
    }
    return api_client.post("/client/signup", body, format="json", **extra)


def login(api_client, email="nobody@example.com", **extra):
    return api_client.post("/client/login", {"email": email, "password": "wrong-Passw0rd"}, format="json", **extra)


@pytest.mark.django_db
def test_signup_and_login_attempts_share_one_limit_per_ip(settings, api_client):
    settings.WALLET_SERVICE_AUTH_THROTTLE_RATE = ThrottleRate(3, 60)
    assert signup(api_client, 1).status_code == 201
    assert login(api_client).status_code == 400  # failed attempts count too
    assert api_client.post("/company/login", {"email": "x@example.com", "password": "y"}).status_code == 400
    refused = signup(api_client, 2)
    assert_problem(refused, 429, "throttled")
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert_problem(login(api_client), 429, "throttled")
    # Another address has its own budget.
    assert signup(api_client, 3, REMOTE_ADDR="10.1.2.3").status_code == 201


@pytest.mark.django_db
def test_the_window_slides(settings, api_client):
    settings.WALLET_SERVICE_AUTH_THROTTLE_RATE = ThrottleRate(2, 1)
    assert login(api_client).status_code == 400
    assert login(api_client).status_code == 400
    assert login(api_client).status_code == 429
    time.sleep(1.1)
    assert login(api_client).status_code == 400


@pytest.mark.django_db
def test_throttle_off_lets_every_attempt_through(settings, api_client):
    settings.WALLET_SERVICE_AUTH_THROTTLE_RATE = None
    assert all(login(api_client).status_code == 400 for _ in range(30))


@pytest.mark.django_db
def test_other_endpoints_are_not_throttled(settings, client_api):
    settings.WALLET_SERVICE_AUTH_THROTTLE_RATE = ThrottleRate(1, 60)
    assert all(client_api.get("/wallet/list").status_code == 200 for _ in range(5))


@pytest.mark.django_db
def test_forwarded_for_is_ignored_without_trusted_proxies(settings, api_client):
    settings.WALLET_SERVICE_AUTH_THROTTLE_RATE = ThrottleRate(1, 60)
    assert login(api_client, HTTP_X_FORWARDED_FOR="1.1.1.1").status_code == 400
    assert login(api_client, HTTP_X_FORWARDED_FOR="2.2.2.2").status_code == 429


@pytest.mark.django_db
def test_forwarded_for_is_used_through_a_trusted_proxy(settings, api_client):
    settings.WALLET_SERVICE_AUTH_THROTTLE_RATE = ThrottleRate(1, 60)
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    assert login(api_client, HTTP_X_FORWARDED_FOR="1.1.1.1").status_code == 400
    assert login(api_client, HTTP_X_FORWARDED_FOR="2.2.2.2").status_code == 400
    assert login(api_client, HTTP_X_FORWARDED_FOR="9.9.9.9, 2.2.2.2").status_code == 429


@pytest.mark.django_db(transaction=True)
def test_simultaneous_attempts_never_exceed_the_limit(settings):
    settings.WALLET_SERVICE_AUTH_THROTTLE_RATE = ThrottleRate(5, 60)
    user = ClientFactory().user
    statuses = race([lambda: login(APIClient(), email=user.email).status_code] * 12)
    assert sorted(statuses) == [400] * 5 + [429] * 7


@pytest.mark.django_db(transaction=True)
def test_an_idle_bucket_purged_during_an_attempt_is_recreated(settings):
    settings.WALLET_SERVICE_AUTH_THROTTLE_RATE = ThrottleRate(5, 60)
    api = APIClient()
    assert login(api).status_code == 400
    ThrottleBucket.objects.update(updated_at=timezone.now() - timedelta(days=2))  # idle: purge_auth may delete it
    purged = []

    def purge_after_the_insert(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not purged and sql.lstrip().upper().startswith("INSERT") and "throttlebucket" in sql.lower():
            purged.append(True)
            on_another_connection(lambda: call_command("purge_auth", stdout=StringIO()))
        return result

    with connection.execute_wrapper(purge_after_the_insert):
        assert login(api).status_code == 400
    assert purged
    assert len(ThrottleBucket.objects.get().hits) == 1  # the old hit went with the purged row


@pytest.mark.django_db
def test_purge_auth_removes_expired_keys_and_idle_buckets_only(settings, api_client):
    settings.WALLET_SERVICE_AUTH_THROTTLE_RATE = ThrottleRate(5, 60)
    login(api_client)
    login(api_client, REMOTE_ADDR="10.0.0.9")
    ThrottleBucket.objects.filter(pk=ThrottleBucket.objects.first().pk).update(
        updated_at=timezone.now() - timedelta(days=2)
    )
    user = ClientFactory().user
    expired, _ = AuthToken.objects.create(user=user, expiry=timedelta(hours=1))
    AuthToken.objects.filter(pk=expired.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    live, _ = AuthToken.objects.create(user=user)
    out = StringIO()
    call_command("purge_auth", stdout=out)
    assert "Deleted 1 expired keys and 1 idle throttle counters." in out.getvalue()
    assert list(AuthToken.objects.values_list("pk", flat=True)) == [live.pk]
    assert ThrottleBucket.objects.count() == 1
