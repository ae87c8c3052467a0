"""Users (email login), their client or company profile, and the auth throttle's counters."""

from __future__ import annotations

import contextlib

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from phonenumber_field.modelfields import PhoneNumberField


def normalize_email(email: str) -> str:
    """The form every email is stored and looked up in: trimmed, lower-cased, IDNA domain.

    Stored emails are plain ASCII and lower-case, so Python and the database agree on what
    "the same email, compared case-insensitively" means.
    """
    local, _, domain = email.strip().rpartition("@")
    # An address whose domain IDNA cannot encode has already been refused by the serializer's EmailField.
    with contextlib.suppress(UnicodeError):
        domain = domain.encode("idna").decode("ascii")
    return f"{local}@{domain}".lower()


class UserManager(BaseUserManager):
    def create_user(self, email: str, password: str | None = None, **extra_fields) -> User:
        user = self.model(email=normalize_email(email), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra_fields) -> User:
        extra_fields.update(kind=User.Kind.STAFF, is_staff=True, is_superuser=True)
        return self.create_user(email, password, **extra_fields)

    def get_by_natural_key(self, username: str) -> User:
        return self.get(email=normalize_email(username))


class User(AbstractBaseUser, PermissionsMixin):
    """An account. ``kind`` says which API it uses: a client, a company, or support staff (admin only)."""

    class Kind(models.TextChoices):
        CLIENT = "client", "Client"
        COMPANY = "company", "Company"
        STAFF = "staff", "Staff"

    email = models.EmailField(max_length=254, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="Can log into the admin site.")
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        constraints = [
            # Emails are stored normalised, but the invariant holds even for rows written by hand.
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
            models.CheckConstraint(condition=models.Q(kind__in=["client", "company", "staff"]), name="user_kind_valid"),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def is_company(self) -> bool:
        return self.kind == self.Kind.COMPANY


class Client(models.Model):
    """The profile of a client: a person who holds wallets, tops them up and is charged."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, primary_key=True, related_name="client")
    first_name = models.CharField(max_length=150)
    last_name = models.CharField(max_length=150)
    phone_number = PhoneNumberField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(first_name="") & ~models.Q(last_name=""), name="client_names_not_blank"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}"


class Company(models.Model):
    """The profile of a company (merchant): one wallet, and it may charge other wallets."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, primary_key=True, related_name="company")
    name = models.CharField(max_length=255)
    url = models.URLField(max_length=200)
    first_name = models.CharField(max_length=150)
    last_name = models.CharField(max_length=150)
    phone_number = PhoneNumberField()

    class Meta:
        verbose_name_plural = "companies"
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(name="") & ~models.Q(first_name="") & ~models.Q(last_name=""),
                name="company_names_not_blank",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ThrottleBucket(models.Model):
    """Recent attempts of one client IP in one throttle scope (a sliding-window log).

    ``key`` is a digest of scope and IP. The row is locked while it is checked and updated, so
    attempts arriving at once through different workers are all counted.
    """

    key = models.CharField(max_length=64, primary_key=True)
    hits = models.JSONField(default=list)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"{self.key[:12]}… ({len(self.hits)} recent)"
