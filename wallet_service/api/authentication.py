"""Token authentication over django-rest-knox's hashed, expiring tokens.

Knox stores only a SHA-512 digest of each key (plus a short lookup prefix) and an expiry. This
class keeps that storage and replaces knox's per-request work, which on every request loads
all of the user's tokens and deletes expired ones, with one indexed query that joins the user
and writes nothing. An expired key is refused (and deleted); expired keys that are never
presented again are removed by ``manage.py purge_auth``.
"""

from __future__ import annotations

from hmac import compare_digest

from django.utils import timezone
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from knox.crypto import hash_token
from knox.models import get_token_model
from knox.settings import CONSTANTS, knox_settings
from rest_framework import exceptions
from rest_framework.authentication import get_authorization_header

INVALID_TOKEN = "Invalid, expired or logged-out token."


class TokenAuthentication(KnoxTokenAuthentication):
    """``Authorization: Token <key>``. ``request.auth`` is the knox ``AuthToken`` row."""

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != knox_settings.AUTH_HEADER_PREFIX.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: expected 'Token <key>'.")
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(INVALID_TOKEN) from None
        return self.authenticate_credentials(key)

    def authenticate_credentials(self, key: str):
        if len(key) > CONSTANTS.MAXIMUM_TOKEN_PREFIX_LENGTH + knox_settings.AUTH_TOKEN_CHARACTER_LENGTH:
            raise exceptions.AuthenticationFailed(INVALID_TOKEN)
        digest = hash_token(key)
        candidates = (
            get_token_model().objects.select_related("user").filter(token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH])
        )
        for auth_token in candidates:
            if not compare_digest(digest, auth_token.digest):
                continue
            if auth_token.expiry is not None and auth_token.expiry <= timezone.now():
                auth_token.delete()
                break
            return self.validate_user(auth_token)
        raise exceptions.AuthenticationFailed(INVALID_TOKEN)
