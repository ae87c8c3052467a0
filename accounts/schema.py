"""OpenAPI descriptions of the account endpoints (see wallet_service/api/schema.py)."""

from __future__ import annotations

from django.contrib.auth import password_validation
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiViewExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse

from accounts import apis
from wallet_service.api.schema import document
from wallet_service.api.shapes import serializer_for

TAGS = ("accounts",)
TOKEN = OpenApiResponse(serializer_for(apis.TokenOutput), description="A new key and when it expires.")
# The README's accounts: a client (Ana) and a company (Shop, run by Luis), each with its own email and phone.
PASSWORD = "s3cure-Passw0rd"
CLIENT_EMAIL = "ana@example.com"
COMPANY_EMAIL = "shop@example.com"
CLIENT_SIGNUP = OpenApiExample(
    "A client",
    {
        "email": CLIENT_EMAIL,
        "password": PASSWORD,
        "client": {"first_name": "Ana", "last_name": "García", "phone_number": "+34666666666"},
    },
    request_only=True,
)
COMPANY_SIGNUP = OpenApiExample(
    "A company",
    {
        "email": COMPANY_EMAIL,
        "password": PASSWORD,
        "company": {
            "name": "Shop",
            "url": "https://shop.example.com",
            "first_name": "Luis",
            "last_name": "Pérez",
            "phone_number": "+34666666667",
        },
    },
    request_only=True,
)
SIGNUP_DESCRIPTION = (
    "Emails are unique across clients and companies, compared case-insensitively: a taken email is 400 "
    "on `email`. Phone numbers must be valid international numbers. The password goes through Django's "
    "validators (length, common passwords, all-numeric, similarity to the email and names). Signup and "
    "login attempts are limited per client IP (`WALLET_SERVICE_AUTH_THROTTLE_RATE`)."
)


def minimum_password_length() -> int:
    lengths = [
        validator.min_length
        for validator in password_validation.get_default_password_validators()
        if isinstance(validator, password_validation.MinimumLengthValidator)
    ]
    return max(lengths, default=1)


class SignupInputSchema(OpenApiSerializerExtension):
    """The password's minimum length, which is a password validator rather than a field rule."""

    target_class = apis.SignupInputSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema.pop("description", None)
        password = schema["properties"]["password"]
        password["minLength"] = minimum_password_length()
        password["description"] = (
            "Checked by Django's password validators: long enough, not a common password, not all digits, "
            "not similar to the email or names."
        )
        return schema


class ClientSignupSchema(OpenApiViewExtension):
    target_class = apis.ClientSignupApi

    def view_replacement(self):
        return document(
            self.target_class,
            summary="Sign up as a client",
            description=SIGNUP_DESCRIPTION,
            tags=TAGS,
            request=apis.ClientSignupInputSerializer,
            responses={201: TOKEN},
            examples=(CLIENT_SIGNUP,),
        )


class CompanySignupSchema(OpenApiViewExtension):
    target_class = apis.CompanySignupApi

    def view_replacement(self):
        return document(
            self.target_class,
            summary="Sign up as a company (merchant)",
            description=SIGNUP_DESCRIPTION,
            tags=TAGS,
            request=apis.CompanySignupInputSerializer,
            responses={201: TOKEN},
            examples=(COMPANY_SIGNUP,),
        )


def login_schema(view, *, kind: str, email: str):
    return document(
        view,
        summary=f"Log in as a {kind}",
        description="Each login issues a new key; older keys stay valid until they expire or are logged out. "
        "A wrong email, a wrong password and the other kind's account all get the same 400 "
        "`invalid_credentials`.",
        tags=TAGS,
        request=apis.LoginInputSerializer,
        responses={
            200: OpenApiResponse(serializer_for(apis.TokenOutput), description="A new key and when it expires.")
        },
        problems=("invalid_credentials",),
        examples=(OpenApiExample("Credentials", {"email": email, "password": PASSWORD}, request_only=True),),
    )


class ClientLoginSchema(OpenApiViewExtension):
    target_class = apis.ClientLoginApi

    def view_replacement(self):
        return login_schema(self.target_class, kind="client", email=CLIENT_EMAIL)


class CompanyLoginSchema(OpenApiViewExtension):
    target_class = apis.CompanyLoginApi

    def view_replacement(self):
        return login_schema(self.target_class, kind="company", email=COMPANY_EMAIL)


class LogoutSchema(OpenApiViewExtension):
    target_class = apis.LogoutApi

    def view_replacement(self):
        return document(
            self.target_class,
            summary="Log out",
            description="Ends the key the request carries, at once; the user's other keys keep working. "
            "Either logout path accepts a client's or a company's key. No body.",
            tags=TAGS,
            responses={204: OpenApiResponse(description="The key no longer works.")},
        )
