"""Invariants the database holds for accounts, whatever code writes the rows."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from rest_framework.test import APIClient

from accounts.models import User, normalize_email
from accounts.tests.factories import UserFactory
from wallet_service.tests.utils import race


def test_normalize_email_lowercases_and_encodes_the_domain():
    assert normalize_email("  Ana.Garcia@Example.COM ") == "ana.garcia@example.com"
    assert normalize_email("ana@bücher.example") == "ana@xn--bcher-kva.example"


@pytest.mark.django_db
def test_database_refuses_emails_differing_only_in_case():
    UserFactory(email="ana@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        User(email="ANA@example.com", kind=User.Kind.CLIENT).save()


@pytest.mark.django_db
def test_database_refuses_an_unknown_kind():
    with pytest.raises(IntegrityError), transaction.atomic():
        User(email="x@example.com", kind="robot").save()


@pytest.mark.django_db
def test_create_superuser_makes_staff_that_cannot_use_the_api(api_client):
    admin = User.objects.create_superuser("Admin@Example.com", "s3cure-Passw0rd")
    assert (admin.email, admin.kind, admin.is_staff, admin.is_superuser) == (
        "admin@example.com",
        User.Kind.STAFF,
        True,
        True,
    )
    for path in ("/client/login", "/company/login"):
        response = api_client.post(path, {"email": admin.email, "password": "s3cure-Passw0rd"}, format="json")
        assert response.status_code == 400


@pytest.mark.django_db(transaction=True)
def test_racing_signups_with_one_email_create_one_account():
    body = {
        "email": "race@example.com",
        "password": "s3cure-Passw0rd",
        "client": {"first_name": "Ana", "last_name": "García", "phone_number": "+34666666666"},
    }
    emails = [body["email"] if n % 2 else body["email"].upper() for n in range(8)]
    statuses = race(
        [
            lambda email=email: APIClient().post("/client/signup", body | {"email": email}, format="json").status_code
            for email in emails
        ]
    )
    assert sorted(statuses) == [201] + [400] * 7
    assert User.objects.count() == 1
