"""The contract's amount rules, on the field that enforces them (HTTP-level checks live in wallets/tests)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework import serializers

from wallet_service.api.fields import AmountField


class AmountSerializer(serializers.Serializer):
    amount = AmountField()


def parse(value):
    serializer = AmountSerializer(data={"amount": value})
    serializer.is_valid()
    return serializer


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12.5", Decimal("12.50")),
        ("12.50", Decimal("12.50")),
        ("12", Decimal("12.00")),
        ("0.01", Decimal("0.01")),
        ("007.10", Decimal("7.10")),
        ("1000000000.00", Decimal("1000000000.00")),
        (12, Decimal("12.00")),
        (Decimal("12.5"), Decimal("12.50")),
        (Decimal("12.500"), Decimal("12.50")),  # a JSON number is taken by its value
        (Decimal("1.2E+1"), Decimal("12.00")),
        (Decimal("1E-2"), Decimal("0.01")),
    ],
)
def test_valid_amounts_become_two_decimal_decimals(value, expected):
    serializer = parse(value)
    assert serializer.is_valid(), serializer.errors
    amount = serializer.validated_data["amount"]
    assert amount == expected
    assert amount.as_tuple().exponent == -2


@pytest.mark.parametrize(
    "value",
    [
        "1.500",  # three decimals as written
        "12.",
        ".5",
        "1e2",
        "+1",
        "-1",
        " 1",
        "1 ",
        "1,00",
        "1_000",
        "١٢",  # Arabic-Indic digits are digits to Python, not to the contract
        "",
        "0",
        "0.00",
        "1000000000.01",
        "99999999999999999999999999",
        "NaN",
        "Infinity",
        True,
        False,
        None,
        [],
        {},
        0,
        -5,
        1000000001,
        10**30,
        Decimal("1.005"),
        Decimal("0.001"),
        Decimal("1E-1000000"),
        Decimal("1E+400"),
        Decimal("-0"),
        Decimal("NaN"),
        Decimal("Infinity"),
    ],
)
def test_invalid_amounts_are_refused(value):
    serializer = parse(value)
    assert not serializer.is_valid()
    assert "amount" in serializer.errors


def test_representation_is_a_two_decimal_string():
    assert AmountField().to_representation(Decimal("5")) == "5.00"
