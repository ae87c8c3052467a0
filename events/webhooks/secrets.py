"""Webhook signing secrets: shown once, stored encrypted.

A secret is 32 random bytes, shown as ``whsec_<base64>`` (the Standard Webhooks form). The service
must keep it usable (it signs every delivery with it), so it cannot be hashed; it is encrypted with
Fernet (AES-128-CBC + HMAC-SHA256) under a key derived by HKDF from ``SECRET_KEY`` for this purpose
only, and the plaintext names its endpoint, so a ciphertext copied onto another endpoint's row is
refused. A database dump alone therefore reveals no secret; the dump and ``SECRET_KEY`` together do.

Rotating ``SECRET_KEY`` makes every stored secret undecryptable: each endpoint's attempts then fail
(``last_error`` says so) until its owner deletes and re-creates it. Secrets under a key listed in
Django's ``SECRET_KEY_FALLBACKS`` still decrypt (``MultiFernet``), should the settings ever list one;
no re-encryption command exists yet.
"""

from __future__ import annotations

import base64
import json
import secrets
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

PREFIX = "whsec_"
SECRET_BYTES = 32


class UndecryptableSecret(ValueError):
    """The stored secret was not encrypted under SECRET_KEY (or a fallback) for this endpoint."""


@cache
def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"webhook-secret").derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _keys() -> MultiFernet:
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet(key) for key in keys])


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def encrypt_secret(endpoint_id: str, secret: str) -> str:
    plaintext = json.dumps({"endpoint": endpoint_id, "secret": secret}, separators=(",", ":")).encode()
    return _keys().encrypt(plaintext).decode("ascii")


def decrypt_secret(endpoint_id: str, token: str) -> str:
    try:
        payload = json.loads(_keys().decrypt(token.encode("ascii")))
    except (InvalidToken, ValueError) as error:
        raise UndecryptableSecret(endpoint_id) from error
    if not isinstance(payload, dict) or payload.get("endpoint") != endpoint_id:
        raise UndecryptableSecret(endpoint_id)
    return payload["secret"]
