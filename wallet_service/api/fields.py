"""Serializer fields shared by the API."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from rest_framework import serializers

from wallet_service.money import MAX_AMOUNT, MONEY_QUANTUM

AMOUNT_STRING_RE = re.compile(r"[0-9]+(\.[0-9]{1,2})?")
# What a public id in a path can be: wallet tokens, hold, event and webhook ids are all URL-safe base64
# (with a prefix such as "wh_"). Anything else (a NUL byte included) names nothing: checked before
# it reaches the database, which refuses NUL in text with an error.
PUBLIC_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


class StrictCharField(serializers.CharField):
    """A string field that refuses JSON numbers and booleans instead of turning them into text."""

    def to_internal_value(self, data) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def format_money(value: Decimal) -> str:
    """A balance or amount as the contract writes it: a string with exactly two decimals."""
    return str(value.quantize(MONEY_QUANTUM))


class AmountField(serializers.Field):
    """A positive amount of money with at most two decimals, up to ``MAX_AMOUNT``.

    Accepts a JSON string matching ``[0-9]+(\\.[0-9]{1,2})?`` (at most two decimals as written:
    no sign, exponent, spaces or separators) or a JSON number taken by its value (``12.50`` and
    ``1.2e1`` are fine, ``1.005`` is not). Booleans, ``NaN``, ``Infinity``, empty strings and any
    other type are refused. Always returns a ``Decimal`` with two decimal places.
    """

    default_error_messages = {
        "invalid": 'Enter an amount as a string like "12.50" or a number, with at most two decimals.',
        "decimals": "An amount has at most two decimal places.",
        "not_positive": "The amount must be greater than zero.",
        "too_large": f"The amount must be at most {MAX_AMOUNT}.",
    }

    def to_internal_value(self, data) -> Decimal:
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, str):
            if not AMOUNT_STRING_RE.fullmatch(data):
                self.fail("invalid")
            value = Decimal(data)
        elif isinstance(data, int):
            value = Decimal(data)
        elif isinstance(data, Decimal):
            value = data
        elif isinstance(data, float):
            # Only reachable when called from Python: the JSON parser produces Decimals.
            value = Decimal(repr(data))
        else:
            self.fail("invalid")
        if not value.is_finite():
            self.fail("invalid")
        if value <= 0:
            self.fail("not_positive")
        if value > MAX_AMOUNT:
            self.fail("too_large")
        try:
            quantized = value.quantize(MONEY_QUANTUM)
        except InvalidOperation:
            self.fail("invalid")
        if quantized != value:
            self.fail("decimals")
        return quantized

    def to_representation(self, value: Decimal) -> str:
        return format_money(value)
