"""Keyset pagination shared by the lists: ``limit`` and a ``Link: <next URL>; rel="next"`` header (RFC 8288)."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from rest_framework import serializers

PAGE_DEFAULT_LIMIT = 100
PAGE_MAX_LIMIT = 1000
LIMIT_RE = re.compile(r"[0-9]{1,7}")


def parse_limit(value: str) -> int:
    if not LIMIT_RE.fullmatch(value) or not 1 <= int(value) <= PAGE_MAX_LIMIT:
        raise serializers.ValidationError(f"Enter a whole number from 1 to {PAGE_MAX_LIMIT}.")
    return int(value)


def next_link(request, kept: tuple[str, ...], position: str, *, parameter: str = "cursor") -> dict[str, str]:
    """The ``Link`` header of the next page: this request's absolute URL with the ``kept`` query
    parameters, and ``parameter`` set to ``position``."""
    query = {name: request.query_params[name] for name in kept if name in request.query_params}
    query[parameter] = position
    return {"Link": f'<{request.build_absolute_uri(f"{request.path}?{urlencode(query)}")}>; rel="next"'}
