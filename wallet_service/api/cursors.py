"""Opaque pagination cursors: encrypted, authenticated, and short-lived.

A cursor carries what the next page needs (a position, and for the history the snapshot of the
walk's first page). Signed but readable, it would show the database's transaction counter (the
snapshot's xids) and row ids to every client; so it is encrypted and authenticated with Fernet
(AES-128-CBC and HMAC-SHA256, from the ``cryptography`` library), under a key derived from the
secret key and the cursor's purpose, so that a cursor of one kind is never accepted as another.
Fernet stamps each token with its creation time: a cursor older than ``max_age`` is refused.
"""

from __future__ import annotations

import base64
import json
from functools import cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

# Long enough to page through any history at leisure; short enough that a leaked URL soon stops working.
CURSOR_MAX_AGE_SECONDS = 3600


class InvalidCursor(ValueError):
    """Not a cursor this service issued for this purpose, or one that has expired."""


@cache
def _fernet(purpose: str, secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"cursor:{purpose}".encode()).derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def encode_cursor(purpose: str, payload: dict) -> str:
    token = _fernet(purpose, settings.SECRET_KEY).encrypt(json.dumps(payload, separators=(",", ":")).encode())
    return token.decode("ascii").rstrip("=")


def decode_cursor(purpose: str, value: str, *, max_age: int = CURSOR_MAX_AGE_SECONDS) -> dict:
    """The payload of a cursor issued by ``encode_cursor(purpose, …)`` less than ``max_age`` seconds ago."""
    try:
        padded = value + "=" * (-len(value) % 4)
        raw = _fernet(purpose, settings.SECRET_KEY).decrypt(padded.encode("ascii"), ttl=max_age)
        payload = json.loads(raw)
    except (InvalidToken, UnicodeEncodeError, ValueError) as error:
        raise InvalidCursor(value) from error
    if not isinstance(payload, dict):
        raise InvalidCursor(value)
    return payload
