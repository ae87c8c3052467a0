"""Signup, login and logout for clients and companies. Thin views: parse, call a service, render."""

from __future__ import annotations

from typing import TypedDict

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from phonenumber_field.serializerfields import PhoneNumberField
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.models import User, normalize_email
from accounts.throttling import AuthRateThrottle
from wallet_service.api.fields import StrictCharField
from wallet_service.api.shapes import Instant
from wallets.items import format_date

PASSWORD_MAX_LENGTH = 256  # hashing a megabyte-long password on every attempt is a denial of service


class TokenOutput(TypedDict):
    token: str
    expiry: Instant


class PersonInputSerializer(serializers.Serializer):
    first_name = StrictCharField(max_length=150)
    last_name = StrictCharField(max_length=150)
    phone_number = PhoneNumberField()


class ClientProfileInputSerializer(PersonInputSerializer):
    pass


class CompanyProfileInputSerializer(PersonInputSerializer):
    name = StrictCharField(max_length=255)
    url = serializers.URLField(max_length=200)


class SignupInputSerializer(serializers.Serializer):
    """Email, password and the profile under ``profile_field`` (``client`` or ``company``)."""

    profile_field: str

    email = serializers.EmailField(max_length=254)
    password = StrictCharField(max_length=PASSWORD_MAX_LENGTH, trim_whitespace=False)

    def validate_email(self, value: str) -> str:
        """The address as it will be stored: see ``normalize_email``."""
        email = normalize_email(value)
        # Lower-casing can lengthen text ("İ" becomes two code points) and IDNA can lengthen a domain;
        # what is stored must still be a plain-ASCII address that fits the column.
        if not email.isascii() or len(email) > User._meta.get_field("email").max_length:
            raise serializers.ValidationError("Enter a valid email address.")
        if User.objects.filter(email=email).exists():
            raise serializers.ValidationError(services.EMAIL_TAKEN)
        return email

    def validate(self, attrs):
        profile = attrs[self.profile_field]
        # Judge the password against the account it is for (it must not resemble the email or names).
        candidate = User(email=attrs["email"])
        candidate.first_name = profile["first_name"]
        candidate.last_name = profile["last_name"]
        try:
            password_validation.validate_password(attrs["password"], user=candidate)
        except DjangoValidationError as error:
            raise serializers.ValidationError({"password": list(error.messages)}) from None
        return attrs


class ClientSignupInputSerializer(SignupInputSerializer):
    profile_field = "client"
    client = ClientProfileInputSerializer()


class CompanySignupInputSerializer(SignupInputSerializer):
    profile_field = "company"
    company = CompanyProfileInputSerializer()


class LoginInputSerializer(serializers.Serializer):
    # Not an EmailField: any wrong email, malformed or not, is just wrong credentials.
    email = StrictCharField(max_length=254)
    password = StrictCharField(max_length=PASSWORD_MAX_LENGTH, trim_whitespace=False)


class PublicAuthApi(APIView):
    """Signup and login: no authentication needed (a stale key must not block them), throttled per IP."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    throttle_classes = (AuthRateThrottle,)


def token_response(issued: services.IssuedToken, status_code: int) -> Response:
    body: TokenOutput = {"token": issued.token, "expiry": format_date(issued.expiry)}
    return Response(body, status=status_code)


class ClientSignupApi(PublicAuthApi):
    def post(self, request):
        serializer = ClientSignupInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        issued = services.client_signup(email=data["email"], password=data["password"], **data["client"])
        return token_response(issued, status.HTTP_201_CREATED)


class CompanySignupApi(PublicAuthApi):
    def post(self, request):
        serializer = CompanySignupInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        issued = services.company_signup(email=data["email"], password=data["password"], **data["company"])
        return token_response(issued, status.HTTP_201_CREATED)


class LoginApi(PublicAuthApi):
    kind: str

    def post(self, request):
        serializer = LoginInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = services.user_login(kind=self.kind, **serializer.validated_data)
        return token_response(issued, status.HTTP_200_OK)


class ClientLoginApi(LoginApi):
    kind = User.Kind.CLIENT


class CompanyLoginApi(LoginApi):
    kind = User.Kind.COMPANY


class LogoutApi(APIView):
    """Ends the key the request was authenticated with. Either logout path accepts any valid key."""

    def post(self, request):
        services.user_logout(auth_token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)
