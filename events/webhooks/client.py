"""Sending one webhook: a signed POST with a hard deadline, to an address checked just before.

- The URL's host is resolved once per attempt and every address checked (events.webhooks.addresses);
  the connection goes to one of those very addresses (no second resolution an attacker's DNS could
  answer differently), while the ``Host`` header, TLS SNI and certificate verification use the name.
- 10 seconds in all, from resolution to the status line: each socket operation gets what is left,
  and a watchdog thread shuts the socket at the deadline (a server trickling bytes cannot hold it longer).
- HTTP by the standard library's http.client (answers from servers we do not control are parsed by it; a
  client of our own measured 0.12 ms of CPU less per delivery and was not kept: docs/PERFORMANCE.md).
- Redirects are not followed (a 3xx is a failed attempt); at most ``MAX_RESPONSE_BYTES`` of the
  answer's body are read (kept as the error text), the rest is dropped with the connection.
- Connections are kept alive (HTTP/1.1) for the next attempt to the same host, port and address, idle at
  most ``IDLE_SECONDS``: the name is still resolved and every address checked at each attempt, and a kept
  connection is used only if it goes to one of the addresses just checked. One whose server closed it
  meanwhile (found before sending, or by the send failing before any answer came) is replaced by a new
  one within the same deadline; an answer read in part, or longer than ``MAX_RESPONSE_BYTES``, ends it.
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import itertools
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from standardwebhooks import Webhook

from events.webhooks.addresses import RefusedURL, parse_url, resolve

TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 4096
USER_AGENT = "wallet-service-webhooks/1"
IDLE_SECONDS = 2.0  # a kept-alive connection idle longer is closed, not used again
MAX_IDLE_CONNECTIONS = 64  # kept alive at once, over all hosts


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
        "webhook-signature": _signer(secret).sign(event_id, now, body),
    }


@lru_cache(maxsize=1024)
def _signer(secret: str) -> Webhook:
    return Webhook(secret)


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


class _Watchdog:
    """One thread that shuts each watched socket at its deadline, so that a server trickling bytes cannot
    hold an attempt past it (socket timeouts bound each read, not their sum)."""

    def __init__(self):
        self._condition = threading.Condition()
        self._deadlines: list[tuple[float, int]] = []  # a heap of (deadline, key)
        self._watched: dict[int, socket.socket] = {}
        self._keys = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket, deadline: float) -> int:
        with self._condition:
            key = next(self._keys)
            self._watched[key] = sock
            heapq.heappush(self._deadlines, (deadline, key))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="webhook-watchdog", daemon=True)
                self._thread.start()
            elif self._deadlines[0][1] == key:  # earlier than the one it sleeps until
                self._condition.notify()
        return key

    def release(self, key: int) -> None:
        with self._condition:
            self._watched.pop(key, None)

    def _run(self) -> None:
        with self._condition:
            while True:
                now = time.monotonic()
                while self._deadlines and (self._deadlines[0][0] <= now or self._deadlines[0][1] not in self._watched):
                    _, key = heapq.heappop(self._deadlines)
                    sock = self._watched.pop(key, None)
                    if sock is not None:
                        _shut(sock)
                self._condition.wait(self._deadlines[0][0] - now if self._deadlines else None)


_watchdog = _Watchdog()


class _Idle:
    """Kept-alive connections not in use, by (tls, host, port, address, context), newest last; at most
    ``MAX_IDLE_CONNECTIONS``, none idle longer than ``IDLE_SECONDS``."""

    def __init__(self):
        self._lock = threading.Lock()
        self._connections: dict[tuple, list[tuple[float, _PinnedConnection]]] = {}
        self._count = 0
        self._swept = time.monotonic()

    def take(self, key: tuple) -> _PinnedConnection | None:
        """The newest idle connection for ``key`` that its server has not closed, or None."""
        while True:
            with self._lock:
                idle = self._connections.get(key)
                if not idle:
                    return None
                since, connection = idle.pop()
                self._count -= 1
            if time.monotonic() - since < IDLE_SECONDS and not _has_spoken(connection.sock):
                return connection
            connection.close()

    def give_back(self, key: tuple, connection: _PinnedConnection) -> None:
        now = time.monotonic()
        closing = []
        with self._lock:
            self._connections.setdefault(key, []).append((now, connection))
            self._count += 1
            if now - self._swept >= IDLE_SECONDS or self._count > MAX_IDLE_CONNECTIONS:
                self._swept = now
                for idle in self._connections.values():
                    closing += [old for since, old in idle if now - since >= IDLE_SECONDS]
                    idle[:] = [(since, old) for since, old in idle if now - since < IDLE_SECONDS]
                self._count = sum(len(idle) for idle in self._connections.values())
                while self._count > MAX_IDLE_CONNECTIONS:  # the oldest first
                    oldest = min((idle for idle in self._connections.values() if idle), key=lambda idle: idle[0][0])
                    closing.append(oldest.pop(0)[1])
                    self._count -= 1
                self._connections = {key: idle for key, idle in self._connections.items() if idle}
        for old in closing:
            old.close()

    def clear(self) -> None:
        """Close every idle connection."""
        with self._lock:
            closing = [connection for idle in self._connections.values() for _, connection in idle]
            self._connections, self._count = {}, 0
        for connection in closing:
            connection.close()


_idle = _Idle()


def close_idle_connections() -> None:
    """Close the connections kept alive for later attempts (a worker stopping, a test ending)."""
    _idle.clear()


def _has_spoken(sock: socket.socket | None) -> bool:
    """Whether an idle connection's server has sent something (its end of the connection, in practice)."""
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


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
    context = (context or default_context()) if tls else None
    errors = []
    for address in addresses:
        key = (tls, parts.hostname, port, address, context)
        kept = _idle.take(key)
        if kept is not None:
            outcome = _exchange(kept, key, address, path, body, headers, deadline, kept=True)
            if outcome is not None:
                return outcome
            # The server had closed it: the same request on a new connection, within the same deadline.
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
        return _exchange(connection, key, address, path, body, headers, deadline)
    return Outcome("network_error", error="; ".join(errors) or "timed out before connecting")


def _exchange(connection, key, address, path, body, headers, deadline, kept: bool = False) -> Outcome | None:
    """One request on ``connection``, kept alive afterwards if it can be. None only for a ``kept``
    connection that failed before any answer came (its server had closed it): nothing was answered."""
    sock = connection.sock
    watch = _watchdog.watch(sock, deadline)
    reusable = False
    answered = False
    try:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        connection.request(
            "POST",
            path,
            body=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
        )
        response = connection.getresponse()
        answered = True
        status = response.status
        text = ""
        # The body only serves as the error's text (read up to MAX_RESPONSE_BYTES); a 2xx's is read only
        # when it is known to be that short (a 204's is empty), to keep the connection.
        short = response.length is not None and response.length <= MAX_RESPONSE_BYTES
        if not 200 <= status < 300 or (short and not response.will_close):
            try:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                text = response.read(MAX_RESPONSE_BYTES).decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):
                pass
        reusable = not response.will_close and response.isclosed() and time.monotonic() < deadline
    except (OSError, http.client.HTTPException, ssl.SSLError) as error:
        late = time.monotonic() >= deadline
        if kept and not answered and not late and _closed_by_server(error):
            return None
        reason = "no answer within the deadline" if late else f"{error.__class__.__name__}: {error}"
        return Outcome("network_error", error=reason, address=address)
    finally:
        _watchdog.release(watch)
        if reusable:
            _idle.give_back(key, connection)
        else:
            connection.close()
    if 200 <= status < 300:
        return Outcome("delivered", status=status, address=address)
    return Outcome("http_error", status=status, error=f"HTTP {status}: {text[:1000]}", address=address)


def _closed_by_server(error: BaseException) -> bool:
    return isinstance(
        error,
        (
            http.client.RemoteDisconnected,
            BrokenPipeError,
            ConnectionResetError,
            ConnectionAbortedError,
            ssl.SSLZeroReturnError,
            ssl.SSLEOFError,
        ),
    )


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
