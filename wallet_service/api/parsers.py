"""Strict JSON request parsing: exact decimals, and no input that could reach the database badly.

- Numbers with a fraction or exponent are parsed as ``Decimal`` (never ``float``), so ``12.5``
  and ``0.1`` arrive exactly and money never passes through binary floating point.
- ``NaN``/``Infinity`` literals, invalid UTF-8, lone surrogates (which PostgreSQL cannot store),
  absurd nesting and oversized numbers are a 400 ``validation_error``, never a 500.
"""

from __future__ import annotations

import codecs
import json
from decimal import Decimal

from rest_framework import parsers
from rest_framework.exceptions import ParseError


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


class JSONParser(parsers.JSONParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read()
        try:
            text = codecs.decode(raw, "utf-8-sig")
        except UnicodeDecodeError:
            raise ParseError("JSON parse error: the body is not valid UTF-8.") from None
        try:
            data = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
            # Lone surrogates ("\ud800") decode fine but cannot be stored or re-encoded.
            json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")
        except (ValueError, ArithmeticError, RecursionError, UnicodeEncodeError) as error:
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ParseError(f"JSON parse error: {message}") from None
        return data
