"""What makes two requests "the same request" for an idempotency key.

The contract: same method, same path (compared without a trailing slash) and same body, where
bodies are compared as parsed JSON — key order and spacing do not matter, numbers compare by
value (``10``, ``10.0`` and ``1e1`` are equal), and a number never equals a string (``10`` and
``"10.00"`` are different bodies). A body that is not JSON is compared byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal, InvalidOperation


def canonical_path(path: str) -> str:
    # A NUL (a %00 in the URL) cannot be stored in PostgreSQL's text: it is kept as it was sent, %00.
    return path.rstrip("/").replace("\x00", "%00") or "/"


def _canonical_number(number: Decimal) -> str:
    """One spelling per value, exactly (no rounding, unlike Decimal.normalize()): 10, 10.0, 1e1 and
    1.0E+1 are all ``1e1``; zero is ``0`` whatever its sign or exponent."""
    sign, digits, exponent = number.as_tuple()
    if not isinstance(exponent, int):
        raise TypeError("not a finite number")  # NaN or Infinity: not JSON
    text = "".join(map(str, digits)).lstrip("0")
    if not text:
        return "0"
    stripped = text.rstrip("0")
    return f"{'-' if sign else ''}{stripped}e{exponent + len(text) - len(stripped)}"


def _canonical(value):
    """A JSON-serialisable form of ``value`` in which every JSON type is tagged, so that no two
    different values share a form, and equal numbers of any spelling share one."""
    if value is None:
        return ["null"]
    if isinstance(value, bool):  # before numbers: bool is an int in Python
        return ["bool", value]
    if isinstance(value, (int, Decimal)):
        return ["number", _canonical_number(Decimal(value))]
    if isinstance(value, str):
        return ["string", value]
    if isinstance(value, list):
        return ["array", [_canonical(item) for item in value]]
    if isinstance(value, dict):
        return ["object", sorted([key, _canonical(item)] for key, item in value.items())]
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def body_digest(raw: bytes) -> str:
    """SHA-256 of the body's canonical form: its parsed JSON, or its bytes when it is not JSON."""
    try:
        parsed = json.loads(raw.decode("utf-8-sig"), parse_float=Decimal, parse_int=Decimal) if raw.strip() else None
        form = ["json", _canonical(parsed)] if raw.strip() else ["empty"]
        encoded = json.dumps(form, ensure_ascii=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError, ArithmeticError, InvalidOperation, TypeError, UnicodeError):
        # Not JSON (or JSON the parser will refuse anyway): the exact bytes name the request.
        encoded = b"raw:" + raw
    return hashlib.sha256(encoded).hexdigest()
