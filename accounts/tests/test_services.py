"""Account services called directly."""

from __future__ import annotations

import pytest
from django.db import IntegrityError
from knox.models import AuthToken

from accounts import services
from accounts.models import Client, User
from wallet_service.api.errors import FieldError, InvalidCredentials


@pytest.mark.django_db
def test_signup_is_atomic_no_user_without_its_profile():
    # The serializer refuses a blank name; called directly, the database's CHECK constraint does.
    with pytest.raises(IntegrityError):
        services.client_signup(
            email="ana@example.com",
            password="s3cure-Passw0rd",
            first_name="",
            last_name="G",
            phone_number="+34666666666",
        )
    assert not User.objects.exists()
    assert not AuthToken.objects.exists()


@pytest.mark.django_db
def test_signup_with_a_taken_email_raises_a_field_error_on_email():
    kwargs = {"password": "s3cure-Passw0rd", "first_name": "Ana", "last_name": "G", "phone_number": "+34666666666"}
    services.client_signup(email="ana@example.com", **kwargs)
    with pytest.raises(FieldError) as raised:
        services.client_signup(email="ANA@example.com", **kwargs)
    assert raised.value.errors == {"email": [services.EMAIL_TAKEN]}
    assert Client.objects.count() == 1


@pytest.mark.django_db
def test_login_removes_only_this_users_expired_keys():
    kwargs = {"password": "s3cure-Passw0rd", "first_name": "Ana", "last_name": "G", "phone_number": "+34666666666"}
    first = services.client_signup(email="ana@example.com", **kwargs)
    other = services.client_signup(email="bea@example.com", **kwargs)
    AuthToken.objects.update(expiry=first.expiry.replace(year=2000))
    services.user_login(kind=User.Kind.CLIENT, email="ana@example.com", password="s3cure-Passw0rd")
    assert AuthToken.objects.filter(user=first.user).count() == 1  # the new key only
    assert AuthToken.objects.filter(user=other.user).count() == 1  # someone else's expired key: purge_auth's job
    with pytest.raises(InvalidCredentials):
        services.user_login(kind=User.Kind.COMPANY, email="ana@example.com", password="s3cure-Passw0rd")
