"""One JSON call over HTTP with the standard library only, and a free local port.

Shared by everything that drives a running service from outside: deploy/smoke.py (run with any
Python 3, so standard library only; it imports this module from its own folder), bench/run.py, and
the tests that start real servers (wallet_service/tests/servers.py, schemathesis_hooks.py).
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from email.message import Message


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def send(
    base: str,
    method: str,
    path: str,
    body=None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, Message, bytes]:
    """``method base+path`` with ``body`` as JSON and ``Authorization: Token <token>``; the status, headers
    and raw body of the answer, whatever its status (an error status is an answer, not an exception)."""
    headers = {"Accept": "application/json", **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    if token:
        headers["Authorization"] = f"Token {token}"
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()
