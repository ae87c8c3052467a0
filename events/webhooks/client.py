"""Sending one webhook: a signed POST with a hard deadline, to an address checked just before.

- The URL's host is resolved once per attempt and every address checked (events.webhooks.addresses);
  the connection goes to one of those very addresses (no second resolution an attacker's DNS could
  answer differently), while the ``Host`` header, TLS SNI and certificate verification use the name.
- 10 seconds in all, from resolution to the status line: each socket operation gets what is left,
  and a timer shuts the socket at the deadline (a server trickling bytes cannot hold it longer).
- Redirects are not followed (a 3xx is a failed attempt); at most ``MAX_RESPONSE_BYTES`` of the
  answer's body are read (kept as the error text), the rest is dropped with the connection.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from standardwebhooks import Webhook

from events.webhooks.addresses import RefusedURL, parse_url, resolve

TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 4096
USER_AGENT = "wallet-service-webhooks/1"


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to. ``outcome`` is ``delivered``, ``http_error`` (an answer that was not
    2xx), ``network_error`` (resolution, connection, TLS, timeout) or ``refused`` (a non-public
    address)."""

    outcome: str
    status: int | None = None
    error: str = ""
    address: str | None = None

    @property
    def delivered(self) -> bool:
        return self.outcome == "delivered"


def signed_headers(secret: str, event_id: str, body: bytes, now: datetime | None = None) -> dict[str, str]:
    now = now or datetime.now(tz=UTC)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, now, body),
    }


class _PinnedConnection(http.client.HTTPSConnection):
    """HTTP(S) to ``address``, speaking to ``host``: Host header, SNI and verification use the name."""

    def __init__(self, host, port, *, address, tls, context, timeout):
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = tls

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls:
            try:
                sock = self._context.wrap_socket(sock, server_hostname=self.host)
            except BaseException:
                sock.close()
                raise
        self.sock = sock


_default_context: ssl.SSLContext | None = None


def default_context() -> ssl.SSLContext:
    global _default_context
    if _default_context is None:
        _default_context = ssl.create_default_context()
    return _default_context


def send(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float = TIMEOUT_SECONDS,
    context: ssl.SSLContext | None = None,
) -> Outcome:
    """POST ``body`` to ``url`` once, never raising: the Outcome says what happened."""
    deadline = time.monotonic() + timeout
    try:
        parts = parse_url(url)
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        addresses = resolve(parts.hostname, port)
    except RefusedURL as refused:
        return Outcome("refused", error=str(refused))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    errors = []
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        connection = _PinnedConnection(
            parts.hostname, port, address=address, tls=tls, context=context or default_context(), timeout=remaining
        )
        try:
            connection.connect()
        except (OSError, ssl.SSLError) as error:
            connection.close()
            errors.append(f"{address}: {error.__class__.__name__}: {error}")
            if isinstance(error, ssl.SSLError):
                break  # the host answered: another address would not fix its certificate
            continue
        return _exchange(connection, address, path, body, headers, deadline)
    return Outcome("network_error", error="; ".join(errors) or "timed out before connecting")


def _exchange(connection, address, path, body, headers, deadline) -> Outcome:
    sock = connection.sock
    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _shut, args=(sock,))
    watchdog.daemon = True
    watchdog.start()
    try:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        connection.request(
            "POST",
            path,
            body=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
        )
        response = connection.getresponse()
        status = response.status
        text = ""
        if not 200 <= status < 300:  # the body only serves as the error's text
            try:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                text = response.read(MAX_RESPONSE_BYTES).decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):
                pass
    except (OSError, http.client.HTTPException, ssl.SSLError) as error:
        late = time.monotonic() >= deadline
        reason = "no answer within the deadline" if late else f"{error.__class__.__name__}: {error}"
        return Outcome("network_error", error=reason, address=address)
    finally:
        watchdog.cancel()
        connection.close()
    if 200 <= status < 300:
        return Outcome("delivered", status=status, address=address)
    return Outcome("http_error", status=status, error=f"HTTP {status}: {text[:1000]}", address=address)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
