"""Which bodies are the same request: parsed JSON, numbers by value, exactly."""

from __future__ import annotations

import pytest

from idempotency.fingerprints import body_digest, canonical_path


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (b'{"a": 1, "b": "x"}', b'{ "b":"x" ,"a":1 }'),
        (b'{"amount": 10}', b'{"amount": 10.00}'),
        (b'{"amount": 10}', b'{"amount": 1e1}'),
        (b'{"amount": 10}', b'{"amount": 1.0E+1}'),
        (b'{"amount": 0}', b'{"amount": -0.00}'),
        (b'{"n": 1e9999999}', b'{"n": 1E9999999}'),
        (b"", b"  "),
        (b'\xef\xbb\xbf{"a": 1}', b'{"a": 1}'),  # a UTF-8 byte order mark
    ],
)
def test_equal_bodies_have_one_digest(first, second):
    assert body_digest(first) == body_digest(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (b'{"amount": 10}', b'{"amount": "10.00"}'),
        (b'{"amount": 10}', b'{"amount": "10"}'),
        (b'{"amount": 10}', b'{"amount": 10.000000000000000000000000001}'),
        (b'{"n": 12345678901234567890123456789012}', b'{"n": 12345678901234567890123456789013}'),
        (b'{"n": 1e-9999999}', b'{"n": 2e-9999999}'),
        (b'{"flag": true}', b'{"flag": 1}'),
        (b'{"x": null}', b"{}"),
        (b"[1, 2]", b"[2, 1]"),
        (b'{"a": {"b": 1}}', b'{"a": [["b", 1]]}'),
        (b"{not json", b"{not  json"),
        (b"", b"{}"),
    ],
)
def test_different_bodies_have_different_digests(first, second):
    assert body_digest(first) != body_digest(second)


def test_paths_compare_without_the_trailing_slash():
    assert canonical_path("/wallet/charge/") == canonical_path("/wallet/charge") == "/wallet/charge"
    assert canonical_path("/") == "/"
