"""The charge's, deposit's and bulk charge's input read without the serializer agrees with the serializer on every
body."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from wallets.apis import (
    BulkChargeInputSerializer,
    MoneyMovementInputSerializer,
    bulk_charge_input,
    money_movement_input,
)

texts = st.one_of(
    st.text(max_size=300),
    st.sampled_from(["", " ", "abc", " abc", "x" * 255, "x" * 256, "a\x00b", "\ud800", "García", "0.01"]),
)
amounts = st.one_of(
    st.sampled_from(["0.01", "12.50", "1.005", "0", "-1", "1e2", " 1", "1,00", "", "1000000000.00", "1000000000.01"]),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.booleans(),
    st.none(),
    st.floats(),
    st.text(max_size=12),
)
values = st.one_of(texts, amounts, st.none(), st.integers(), st.booleans(), st.lists(st.integers(), max_size=2))
bodies = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "wallet": st.one_of(texts, values),
            "amount": amounts,
            "summary": st.one_of(texts, st.none(), values),
            "extra": values,
        },
    ),
    values,
)


def outcome(read, data):
    try:
        return "ok", dict(read(data))
    except serializers.ValidationError as error:
        return "refused", error.detail


def with_serializer(data):
    serializer = MoneyMovementInputSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


@settings(max_examples=1500, deadline=None)
@given(bodies)
def test_the_direct_read_and_the_serializer_agree(data):
    direct, serialized = outcome(money_movement_input, data), outcome(with_serializer, data)
    assert direct == serialized
    if direct[0] == "ok":
        assert [type(direct[1][key]) for key in ("wallet", "amount", "summary")] == [str, Decimal, str]


def test_the_usual_bodies():
    body = {"wallet": "tok", "amount": "12.5", "summary": None}
    assert money_movement_input(body) == {"wallet": "tok", "amount": Decimal("12.50"), "summary": ""}
    assert money_movement_input({"wallet": "tok", "amount": 3}) == {
        "wallet": "tok",
        "amount": Decimal("3.00"),
        "summary": "",
    }


def bulk_with_serializer(data):
    serializer = BulkChargeInputSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data["charges"]


def bulk_outcome(read, data):
    try:
        return "ok", [dict(item) for item in read(data)]
    except serializers.ValidationError as error:
        return "refused", error.detail


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.fixed_dictionaries({"charges": st.lists(bodies, max_size=4)}, optional={"extra": values}),
        st.fixed_dictionaries(
            {
                "charges": st.one_of(
                    values, st.lists(st.just({"wallet": "w", "amount": 1}), min_size=1000, max_size=1001)
                )
            }
        ),
        values,
    )
)
def test_the_bulk_direct_read_and_the_serializer_agree(data):
    assert bulk_outcome(bulk_charge_input, data) == bulk_outcome(bulk_with_serializer, data)
