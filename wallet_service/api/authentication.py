"""Token authentication over django-rest-knox's hashed, expiring tokens.

Knox stores only a SHA-512 digest of each key (plus a short lookup prefix) and an expiry. This
class keeps that storage and replaces knox's per-request work, which on every request loads
all of the user's tokens and deletes expired ones, with one indexed query that joins the user
and writes nothing. An expired key is refused (and deleted); expired keys that are never
presented again are removed by ``manage.py purge_auth``.

Every request runs this query, so its SQL is written once and the rows are turned into model
instances with ``Model.from_db``: building the same query through the ORM cost ~0.6 ms of CPU per
request, a sixth of a whole ``GET /wallet/info`` (profiled with py-spy; docs/PERFORMANCE.md).

It always runs on the primary, whatever the request: a logged-out or expired key must stop working at
once, which a replica a moment behind would not see. With read replicas configured, the same query also
returns the user's last write position and the primary's current one (wallet_service/db_routing.py):
what decides, at no extra round trip, whether a replica may serve a GET.
"""

from __future__ import annotations

from functools import cache
from hmac import compare_digest

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from knox.crypto import hash_token
from knox.models import get_token_model
from knox.settings import CONSTANTS, knox_settings
from rest_framework import exceptions
from rest_framework.authentication import get_authorization_header

from wallet_service import db_routing

INVALID_TOKEN = "Invalid, expired or logged-out token."


@cache
def _lookup_sql() -> tuple[str, list, list]:
    """The SELECT of the keys sharing a prefix, joined to their users; and each side's fields."""
    token_model, user_model = get_token_model(), get_user_model()
    token_fields, user_fields = token_model._meta.concrete_fields, user_model._meta.concrete_fields
    quote = connection.ops.quote_name
    columns = [f"t.{quote(field.column)}" for field in token_fields] + [
        f"u.{quote(field.column)}" for field in user_fields
    ]
    sql = (
        f"SELECT {', '.join(columns)} FROM {quote(token_model._meta.db_table)} t "
        f"JOIN {quote(user_model._meta.db_table)} u ON u.{quote(user_model._meta.pk.column)} = "
        f"t.{quote(token_model._meta.get_field('user').column)} "
        f"WHERE t.{quote(token_model._meta.get_field('token_key').column)} = %s"
    )
    if settings.READ_REPLICAS:
        # The user's last write position (0 when none) and the primary's current one, as numbers.
        user_id = f"u.{quote(user_model._meta.pk.column)}"
        positions = (
            f"COALESCE((SELECT p.lsn FROM wallet_service_writeposition p WHERE p.user_id = {user_id}), '0/0'::pg_lsn)"
            " - '0/0'::pg_lsn, pg_current_wal_lsn() - '0/0'::pg_lsn"
        )
        sql = sql.replace(" FROM ", f", {positions} FROM ", 1)
    return sql, token_fields, user_fields


@cache
def _models() -> tuple:
    """The token and user models and their concrete fields' attribute names, in ``_lookup_sql``'s column order."""
    _, token_fields, user_fields = _lookup_sql()
    return (
        get_token_model(),
        [field.attname for field in token_fields],
        get_user_model(),
        [field.attname for field in user_fields],
    )


def _tokens_with_prefix(prefix: str) -> list:
    """The knox ``AuthToken`` rows whose key starts with ``prefix``, each with its ``user`` loaded."""
    sql = _lookup_sql()[0]
    token_model, token_names, user_model, user_names = _models()
    with connection.cursor() as cursor:
        cursor.execute(sql, [prefix])
        rows = cursor.fetchall()
        alias = cursor.db.alias  # (each use of django.db.connection is a lookup in a thread-local)
    tokens = []
    split, end = len(token_names), len(token_names) + len(user_names)
    for values in rows:  # psycopg returns the Python types the ORM would (no converters on PostgreSQL)
        token = token_model.from_db(alias, token_names, values[:split])
        token.user = user_model.from_db(alias, user_names, values[split:end])
        if len(values) > end:
            token.user_write_lsn = int(values[end])
            db_routing.note_primary_lsn(int(values[end + 1]))
        tokens.append(token)
    return tokens


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
        return self.authenticate_credentials(key, request)

    def authenticate_credentials(self, key: str, request=None):
        if len(key) > CONSTANTS.MAXIMUM_TOKEN_PREFIX_LENGTH + knox_settings.AUTH_TOKEN_CHARACTER_LENGTH:
            raise exceptions.AuthenticationFailed(INVALID_TOKEN)
        digest = hash_token(key)
        for auth_token in _tokens_with_prefix(key[: CONSTANTS.TOKEN_KEY_LENGTH]):
            if not compare_digest(digest, auth_token.digest):
                continue
            if auth_token.expiry is not None and auth_token.expiry <= timezone.now():
                auth_token.delete()
                break
            user, auth_token = self.validate_user(auth_token)
            safe = request is not None and request.method in db_routing.SAFE_METHODS
            if safe and hasattr(auth_token, "user_write_lsn"):
                # This request may read from a replica that has replayed the user's last write.
                setattr(user, db_routing.READ_LSN, auth_token.user_write_lsn)
            return user, auth_token
        raise exceptions.AuthenticationFailed(INVALID_TOKEN)
