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


class NonStandardConstant(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity``: accepted by Python's json module, not by JSON."""


def _reject_constant(name: str):
    raise NonStandardConstant(name)


class JSONParser(parsers.JSONParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read()
        try:
            text = codecs.decode(raw, "utf-8-sig")
        except UnicodeDecodeError:
            raise ParseError("The body is not valid UTF-8.") from None
        try:
            data = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
            # Lone surrogates ("\ud800") decode fine but cannot be stored or re-encoded.
            json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")
        except json.JSONDecodeError as error:
            position = f"line {error.lineno}, column {error.colno}"
            raise ParseError(f"The body is not valid JSON: {error.msg} ({position}).") from None
        except NonStandardConstant as error:
            raise ParseError(f"The body is not valid JSON: {error} is not a JSON value.") from None
        except UnicodeEncodeError:
            raise ParseError("The body contains an invalid Unicode escape (a lone surrogate).") from None
        except RecursionError:
            raise ParseError("The body is nested too deeply.") from None
        except (ValueError, ArithmeticError):
            # int() past Python's digit limit, or a Decimal exponent past its range
            raise ParseError("The body contains a number too large to read.") from None
        return data
