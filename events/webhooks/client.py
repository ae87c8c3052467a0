"""Sending one webhook: a signed POST with a hard deadline, to an address checked just before.

- The URL's host is resolved once per attempt and every address checked (events.webhooks.addresses);
  the connection goes to one of those very addresses (no second resolution an attacker's DNS could
  answer differently), while the ``Host`` header, TLS SNI and certificate verification use the name.
- 10 seconds in all, from resolution to the status line: each socket operation gets what is left,
  and a watchdog thread shuts the socket at the deadline (a server trickling bytes cannot hold it longer).
- HTTP/1.1 spoken here rather than by http.client (a fifth of the worker's CPU per delivery): the request
  in one write; of the answer, the status line (interim 1xx answers skipped) and the fields that frame the
  body (``Content-Length``, chunked ``Transfer-Encoding``, ``Connection``), lines and fields bounded as
  http.client bounds them.
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


class _Connection:
    """One HTTP/1.1 connection to ``address``, speaking to ``host``: Host header, SNI and certificate
    verification use the name."""

    def __init__(self, host: str, port: int, address: str, tls: bool, context: ssl.SSLContext | None):
        self.host, self.port, self.address, self.tls, self.context = host, port, address, tls, context
        self.sock: socket.socket | None = None
        self.reader = None
        name = f"[{host}]" if ":" in host else host  # an IPv6 address
        name = name if name.isascii() else name.encode("idna").decode("ascii")
        self.host_header = name if port == (443 if tls else 80) else f"{name}:{port}"

    def connect(self, timeout: float) -> None:
        sock = socket.create_connection((self.address, self.port), timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            try:
                sock = self.context.wrap_socket(sock, server_hostname=self.host)
            except BaseException:
                sock.close()
                raise
        self.sock = sock
        self.reader = sock.makefile("rb")

    def close(self) -> None:
        for closing in (self.reader, self.sock):
            if closing is not None:
                with contextlib.suppress(OSError):
                    closing.close()
        self.sock = self.reader = None


_default_context: ssl.SSLContext | None = None
_default_context_lock = threading.Lock()


def default_context() -> ssl.SSLContext:
    global _default_context
    with _default_context_lock:  # made once, not by every thread of a pool starting at once
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
        self._connections: dict[tuple, list[tuple[float, _Connection]]] = {}
        self._count = 0
        self._swept = time.monotonic()

    def take(self, key: tuple) -> _Connection | None:
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

    def give_back(self, key: tuple, connection: _Connection) -> None:
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
        connection = _Connection(parts.hostname, port, address, tls, context)
        try:
            connection.connect(remaining)
        except (OSError, ssl.SSLError) as error:
            connection.close()
            errors.append(f"{address}: {error.__class__.__name__}: {error}")
            if isinstance(error, ssl.SSLError):
                break  # the host answered: another address would not fix its certificate
            continue
        return _exchange(connection, key, address, path, body, headers, deadline)
    return Outcome("network_error", error="; ".join(errors) or "timed out before connecting")


class _NoAnswer(ConnectionError):
    """The server closed the connection before any byte of an answer."""


class _BadAnswer(ValueError):
    """What came back is not HTTP/1.x as this client reads it."""


MAX_LINE = 65536  # bytes in a status or header line (http.client's limit)
MAX_HEADERS = 100


def _exchange(connection, key, address, path, body, headers, deadline, kept: bool = False) -> Outcome | None:
    """One request on ``connection``, kept alive afterwards if it can be. None only for a ``kept``
    connection that failed before any answer came (its server had closed it): nothing was answered."""
    sock = connection.sock
    watch = _watchdog.watch(sock, deadline)
    reusable = False
    answered = False
    try:
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {connection.host_header}\r\nAccept-Encoding: identity\r\n"
            f"Content-Type: application/json\r\nUser-Agent: {USER_AGENT}\r\nContent-Length: {len(body)}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        )
        if "\n" in "".join(headers.values()) + path + connection.host_header:
            raise ValueError("a line break in the request's headers")  # never from a checked URL
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        sock.sendall(request.encode("latin-1") + b"\r\n" + body)
        status, text, reusable = _answer(connection.reader)
        answered = True
    except (OSError, ssl.SSLError, _BadAnswer, _NoAnswer) as error:
        late = time.monotonic() >= deadline
        if kept and not answered and not late and _closed_by_server(error):
            return None
        if isinstance(error, _NoAnswer):
            reason = "RemoteDisconnected: the server closed the connection without an answer"
        else:
            reason = f"{error.__class__.__name__.lstrip('_')}: {error}"
        return Outcome("network_error", error="no answer within the deadline" if late else reason, address=address)
    finally:
        _watchdog.release(watch)
        if reusable and time.monotonic() < deadline:
            _idle.give_back(key, connection)
        else:
            connection.close()
    if 200 <= status < 300:
        return Outcome("delivered", status=status, address=address)
    return Outcome("http_error", status=status, error=f"HTTP {status}: {text[:1000]}", address=address)


def _answer(reader) -> tuple[int, str, bool]:
    """The final answer's status, its body's text (at most MAX_RESPONSE_BYTES; a 2xx's only when known to
    be that short, to keep the connection) and whether the connection can take another request."""
    first = True
    while True:
        line = reader.readline(MAX_LINE + 1)
        if not line and first:
            raise _NoAnswer()
        first = False
        if len(line) > MAX_LINE:
            raise _BadAnswer("status line too long")
        version, _, rest = line.decode("iso-8859-1").rstrip("\r\n").partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit() or rest[3:4] not in ("", " "):
            raise _BadAnswer(f"not an HTTP/1.x status line: {line[:80]!r}")
        status = int(code)
        fields = _fields(reader)
        if 100 <= status < 200 and status != 101:
            continue  # an interim answer (100 Continue, 103 Early Hints): the final one follows
        break
    tokens = {token.strip().lower() for value in fields.get("connection", []) for token in value.split(",")}
    will_close = "close" in tokens or (version == "HTTP/1.0" and "keep-alive" not in tokens) or status == 101
    chunked = any(value.lower().rstrip().endswith("chunked") for value in fields.get("transfer-encoding", []))
    length = None
    if status in (204, 304):
        length, chunked = 0, False
    elif not chunked and "content-length" in fields:
        values = {value.strip() for value in ",".join(fields["content-length"]).split(",")}
        length = int(values.pop()) if len(values) == 1 and next(iter(values)).isdigit() else None
    if not chunked and length is None:
        will_close = True  # the body runs until the connection closes
    if 200 <= status < 300 and (chunked or length is None or length > MAX_RESPONSE_BYTES):
        return status, "", False
    if chunked:
        text, complete = _chunked(reader)
    elif length is not None:
        text = reader.read(min(length, MAX_RESPONSE_BYTES))
        complete = len(text) == length
    else:
        text, complete = reader.read1(MAX_RESPONSE_BYTES), False
    return status, text.decode("utf-8", "replace"), complete and not will_close


def _fields(reader) -> dict[str, list[str]]:
    """The header fields that decide how the body is read, by lower-case name."""
    fields: dict[str, list[str]] = {}
    for _ in range(MAX_HEADERS + 1):
        line = reader.readline(MAX_LINE + 1)
        if line in (b"\r\n", b"\n"):
            return fields
        if not line:
            raise _BadAnswer("the connection closed in the answer's headers")
        if len(line) > MAX_LINE:
            raise _BadAnswer("header line too long")
        name, colon, value = line.decode("iso-8859-1").partition(":")
        name = name.strip().lower()
        if colon and name in ("connection", "content-length", "transfer-encoding"):
            fields.setdefault(name, []).append(value.strip())
    raise _BadAnswer(f"more than {MAX_HEADERS} header lines")


def _chunked(reader) -> tuple[bytes, bool]:
    """A chunked body, up to MAX_RESPONSE_BYTES of it; whether it was read to its end."""
    text = b""
    while True:
        line = reader.readline(MAX_LINE + 1)
        size = line.split(b";", 1)[0].strip()
        if not size or len(line) > MAX_LINE or size.strip(b"0123456789abcdefABCDEF"):
            return text, False
        size = int(size, 16)
        if size == 0:  # the last chunk, then trailer lines up to an empty one
            for _ in range(MAX_HEADERS + 1):
                line = reader.readline(MAX_LINE + 1)
                if line in (b"\r\n", b"\n"):
                    return text, True
                if not line or len(line) > MAX_LINE:
                    return text, False
            return text, False
        if len(text) + size > MAX_RESPONSE_BYTES:
            return text + reader.read(MAX_RESPONSE_BYTES - len(text)), False
        chunk = reader.read(size)
        text += chunk
        if len(chunk) < size or reader.readline(MAX_LINE + 1) not in (b"\r\n", b"\n"):
            return text, False


def _closed_by_server(error: BaseException) -> bool:
    closed = (_NoAnswer, BrokenPipeError, ConnectionResetError, ConnectionAbortedError)
    return isinstance(error, (*closed, ssl.SSLZeroReturnError, ssl.SSLEOFError))


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
