from __future__ import annotations

import pytest
from knox.models import AuthToken

from accounts.models import Client, Company, User
from wallet_service.tests.utils import assert_problem


def client_body(**overrides):
    body = {
        "email": "ana@example.com",
        "password": "s3cure-Passw0rd",
        "client": {"first_name": "Ana", "last_name": "García", "phone_number": "+34666666666"},
    }
    body.update(overrides)
    return body


def company_body(**overrides):
    body = {
        "email": "shop@example.com",
        "password": "s3cure-Passw0rd",
        "company": {
            "name": "Shop",
            "url": "https://shop.example.com",
            "first_name": "Luis",
            "last_name": "Pérez",
            "phone_number": "+34666666667",
        },
    }
    body.update(overrides)
    return body


@pytest.mark.django_db
def test_client_signup_creates_user_profile_and_a_working_token(api_client):
    response = api_client.post("/client/signup", client_body(), format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"token", "expiry"}
    assert body["expiry"].endswith("Z")
    user = User.objects.get()
    assert (user.email, user.kind) == ("ana@example.com", User.Kind.CLIENT)
    assert user.check_password("s3cure-Passw0rd")
    profile = Client.objects.get(user=user)
    assert (profile.first_name, profile.last_name, str(profile.phone_number)) == ("Ana", "García", "+34666666666")
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    assert api_client.get("/wallet/list").status_code == 200


@pytest.mark.django_db
def test_company_signup_creates_user_and_company_profile(api_client):
    response = api_client.post("/company/signup", company_body(), format="json")
    assert response.status_code == 201
    company = Company.objects.select_related("user").get()
    assert company.user.kind == User.Kind.COMPANY
    assert (company.name, company.url) == ("Shop", "https://shop.example.com")


@pytest.mark.django_db
def test_tokens_are_stored_hashed_and_no_response_contains_the_password(api_client):
    response = api_client.post("/client/signup", client_body(), format="json")
    token = response.json()["token"]
    stored = AuthToken.objects.get()
    assert token not in (stored.digest, stored.token_key)
    assert stored.digest != token and len(stored.digest) == 128
    assert b"s3cure-Passw0rd" not in response.content
    assert User.objects.get().password.encode() not in response.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("/client/signup", "/client/signup"),
        ("/client/signup", "/company/signup"),
        ("/company/signup", "/client/signup"),
    ],
)
def test_email_is_unique_across_kinds_and_case_insensitively(api_client, first, second):
    make = {"/client/signup": client_body, "/company/signup": company_body}
    assert api_client.post(first, make[first](email="Ana@Example.com"), format="json").status_code == 201
    response = api_client.post(second, make[second](email="aNA@example.COM"), format="json")
    body = assert_problem(response, 400, "validation_error")
    assert list(body["errors"]) == ["email"]
    assert User.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": ""}, "email"),
        ({"password": "short"}, "password"),
        ({"password": "12345678901"}, "password"),  # numeric only
        ({"password": "password123"}, "password"),  # too common
        ({"password": "ana@example.com"}, "password"),  # too similar to the email
        ({"password": "x" * 300}, "password"),
        ({"client": {"first_name": "Ana", "last_name": "García", "phone_number": "666666666"}}, "client.phone_number"),
        ({"client": {"first_name": "Ana", "last_name": "García", "phone_number": "+3466"}}, "client.phone_number"),
        ({"client": {"first_name": "Ana", "last_name": "García", "phone_number": 34666666666}}, "client.phone_number"),
        ({"client": {"first_name": "", "last_name": "García", "phone_number": "+34666666666"}}, "client.first_name"),
        ({"client": {"last_name": "García", "phone_number": "+34666666666"}}, "client.first_name"),
        ({"client": {"first_name": "A\x00na", "last_name": "G", "phone_number": "+34666666666"}}, "client.first_name"),
        ({"client": "Ana"}, "client"),
        ({"client": None}, "client"),
    ],
)
def test_invalid_client_signup_names_the_field_and_stores_nothing(api_client, overrides, field):
    response = api_client.post("/client/signup", client_body(**overrides), format="json")
    body = assert_problem(response, 400, "validation_error")
    assert field in body["errors"], body
    assert not User.objects.exists()


@pytest.mark.django_db
def test_missing_profile_is_reported_under_its_name(api_client):
    body = client_body()
    del body["client"]
    response = api_client.post("/client/signup", body, format="json")
    assert "client" in assert_problem(response, 400, "validation_error")["errors"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("company_overrides", "field"),
    [
        ({"url": "not a url"}, "company.url"),
        ({"name": ""}, "company.name"),
        ({"phone_number": "+1 555"}, "company.phone_number"),
    ],
)
def test_invalid_company_signup_names_the_nested_field(api_client, company_overrides, field):
    body = company_body()
    body["company"].update(company_overrides)
    response = api_client.post("/company/signup", body, format="json")
    assert field in assert_problem(response, 400, "validation_error")["errors"]
    assert not User.objects.exists()


@pytest.mark.django_db
def test_a_client_body_on_company_signup_is_refused(api_client):
    response = api_client.post("/company/signup", client_body(), format="json")
    assert "company" in assert_problem(response, 400, "validation_error")["errors"]


@pytest.mark.django_db
def test_phone_numbers_are_stored_in_e164(api_client):
    body = client_body(client={"first_name": "Ana", "last_name": "García", "phone_number": "+34 666 66 66 66"})
    assert api_client.post("/client/signup", body, format="json").status_code == 201
    assert str(Client.objects.get().phone_number) == "+34666666666"


@pytest.mark.django_db
def test_signup_ignores_a_stale_authorization_header(api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert api_client.post("/client/signup", client_body(), format="json").status_code == 201


@pytest.mark.django_db
def test_a_number_is_not_a_name(api_client):
    body = client_body(client={"first_name": 5, "last_name": "García", "phone_number": "+34666666666"})
    assert (
        "client.first_name"
        in assert_problem(api_client.post("/client/signup", body, format="json"), 400, "validation_error")["errors"]
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "email",
    [
        "İ" * 200 + "@example.com",  # lower-cases to 400 code points, none of them ASCII
        "ſhop@example.com",  # a long s: passes the email validator, would be a second "shop@example.com"
        "a@" + "漢字." * 60 + "example.com",  # punycode makes the domain far longer than 254 characters
    ],
)
def test_an_email_whose_stored_form_is_not_a_plain_address_is_refused(api_client, email):
    response = api_client.post("/client/signup", client_body(email=email), format="json")
    assert "email" in assert_problem(response, 400, "validation_error")["errors"]
    assert not User.objects.exists()


@pytest.mark.django_db
def test_an_internationalised_domain_is_stored_in_punycode(api_client):
    assert api_client.post("/client/signup", client_body(email="Ana@Bücher.Example"), format="json").status_code == 201
    assert User.objects.get().email == "ana@xn--bcher-kva.example"
