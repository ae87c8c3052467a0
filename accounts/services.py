"""Account writes: signup, login and logout. Every function is keyword-only and owns its transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import update_last_login
from django.db import IntegrityError, transaction
from django.utils import timezone
from knox.models import AuthToken
from phonenumber_field.phonenumber import PhoneNumber

from accounts.models import Client, Company, User, normalize_email
from wallet_service.api.errors import FieldError, InvalidCredentials

EMAIL_TAKEN = "An account with this email already exists."


@dataclass(frozen=True)
class IssuedToken:
    """A new API key: ``token`` is shown to its owner once and stored only as a digest."""

    user: User
    token: str
    expiry: datetime | None


def _issue_token(user: User) -> IssuedToken:
    auth_token, key = AuthToken.objects.create(user=user)
    return IssuedToken(user=user, token=key, expiry=auth_token.expiry)


def _signup(*, kind: str, email: str, password: str, create_profile) -> IssuedToken:
    """Create the user, its profile and its first key in one transaction: no user without a profile.

    The email's uniqueness is checked by the serializer for a friendly message and enforced by the
    database; two signups racing for one email get one account and one 400 on ``email``.
    """
    email = normalize_email(email)
    try:
        with transaction.atomic():
            user = User.objects.create_user(email=email, password=password, kind=kind)
            create_profile(user)
            issued = _issue_token(user)
    except IntegrityError:
        if User.objects.filter(email=email).exists():
            raise FieldError("email", EMAIL_TAKEN) from None
        raise
    return issued


def client_signup(
    *, email: str, password: str, first_name: str, last_name: str, phone_number: PhoneNumber
) -> IssuedToken:
    return _signup(
        kind=User.Kind.CLIENT,
        email=email,
        password=password,
        create_profile=lambda user: Client.objects.create(
            user=user, first_name=first_name, last_name=last_name, phone_number=phone_number
        ),
    )


def company_signup(
    *,
    email: str,
    password: str,
    name: str,
    url: str,
    first_name: str,
    last_name: str,
    phone_number: PhoneNumber,
) -> IssuedToken:
    return _signup(
        kind=User.Kind.COMPANY,
        email=email,
        password=password,
        create_profile=lambda user: Company.objects.create(
            user=user, name=name, url=url, first_name=first_name, last_name=last_name, phone_number=phone_number
        ),
    )


def user_login(*, kind: str, email: str, password: str) -> IssuedToken:
    """Check the credentials of an account of ``kind`` and issue a new key.

    A wrong email, a wrong password, an inactive account and an account of the other kind all
    raise the same ``InvalidCredentials``, after the same password-hashing work, so neither the
    answer nor its timing tells which it was. Older keys stay valid; this user's expired keys are
    removed.
    """
    user = User.objects.filter(email=normalize_email(email), kind=kind).first()
    if user is None or not user.is_active:
        User().set_password(password)  # spend the hashing time a real check would
        raise InvalidCredentials()
    if not user.check_password(password):
        raise InvalidCredentials()
    AuthToken.objects.filter(user=user, expiry__lte=timezone.now()).delete()
    update_last_login(None, user)
    return _issue_token(user)


def user_logout(*, auth_token: AuthToken) -> None:
    """End the presented key at once; the user's other keys keep working."""
    auth_token.delete()
