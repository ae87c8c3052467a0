"""Slow clients cannot stall the service: the server as it is deployed, with sockets that trickle.

Under gunicorn's sync workers, one connection sending a header line every few seconds held a worker
until the worker timeout; a handful of them (one per worker) made `/status` time out. Granian reads
headers in Rust and wallet_service/asgi.py reads bodies on the event loop, each with a deadline, so
the slow connections below hold sockets, not workers.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import threading
import time
import urllib.request

import pytest

from wallet_service.asgi import BODY_READ_TIMEOUT_SECONDS
from wallet_service.serve import HEADER_READ_TIMEOUT_SECONDS
from wallet_service.tests.servers import Server, request, signup

pytestmark = pytest.mark.slow

WORKERS = 2
PROMPT = 2.0  # seconds: what "still answers promptly" means here


@pytest.fixture
def server(tmp_path):
    server = Server({"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}, tmp_path / "server.log", workers=WORKERS)
    server.migrate()
    yield server.start()
    server.stop()


class Trickler:
    """Sockets that each send the start of a request, then one more piece every ``interval`` seconds."""

    def __init__(self, port: int, count: int, *, head: bytes, piece, interval: float = 1.0):
        self.stop = threading.Event()
        self.closed_after: list[float] = []
        self.sockets = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
        self.threads = [
            threading.Thread(target=self._trickle, args=(sock, head, piece, interval), daemon=True)
            for sock in self.sockets
        ]
        for thread in self.threads:
            thread.start()

    def _trickle(self, sock: socket.socket, head: bytes, piece, interval: float) -> None:
        started = time.monotonic()
        try:
            sock.sendall(head)
            n = 0
            while not self.stop.wait(interval):
                n += 1
                sock.sendall(piece(n))
        except OSError:
            self.closed_after.append(time.monotonic() - started)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()


def header_lines(port: int, count: int) -> Trickler:
    return Trickler(
        port, count, head=b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n", piece=lambda n: b"X-Slow-%d: 1\r\n" % n
    )


def body_bytes(port: int, count: int) -> Trickler:
    head = (
        b"POST /client/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    return Trickler(port, count, head=head, piece=lambda n: b" ")


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed it."""
    started = time.monotonic()
    sock.settimeout(limit)
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    return received, time.monotonic() - started


def test_status_and_a_real_charge_answer_promptly_while_slow_clients_trickle(server):
    base = server.base
    slow = [header_lines(server.port, 3 * WORKERS), body_bytes(server.port, 3 * WORKERS)]
    try:
        time.sleep(1.5)  # every worker would now be holding a slow connection, under sync workers
        answers = []

        def call(method, path, body=None, token=None):
            (status, payload), seconds = timed(lambda: request(base, method, path, body, token, timeout=PROMPT + 3))
            answers.append((method, path, status, round(seconds, 2)))
            return status, payload

        assert call("GET", "/status")[0] == 200
        shop = signup(base, "company", "shop@example.com")
        client = signup(base, "client", "ana@example.com")
        assert call("POST", "/wallet/create", {}, shop)[0] == 201
        status, created = call("POST", "/wallet/create", {}, client)
        assert status == 201
        wallet = created["wallet"]
        assert call("POST", "/wallet/deposit", {"wallet": wallet, "amount": "30.00"}, client) == (
            200,
            {"wallet": wallet, "balance": "30.00"},
        )
        status, charged = call("POST", "/wallet/charge", {"wallet": wallet, "amount": "12.50"}, shop)
        assert status == 200
        assert charged["balance"] == "12.50"
        assert call("GET", f"/wallet/info/{wallet}", token=client)[1]["balance"] == "17.50"
        assert call("GET", "/status")[0] == 200
        assert all(seconds < PROMPT for *_, seconds in answers), answers
        # The slow connections were still open the whole time (not refused or dropped early).
        assert all(not trickler.closed_after for trickler in slow)
    finally:
        for trickler in slow:
            trickler.close()


def test_a_connection_that_never_finishes_its_headers_is_closed_after_the_header_timeout(server):
    trickler = header_lines(server.port, 2)
    silent = socket.create_connection(("127.0.0.1", server.port))
    silent.sendall(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    try:
        received, seconds = read_until_closed(silent, HEADER_READ_TIMEOUT_SECONDS + 10)
        assert HEADER_READ_TIMEOUT_SECONDS - 1 <= seconds <= HEADER_READ_TIMEOUT_SECONDS + 3
        assert not received.startswith(b"HTTP/1.1 2")
        # A line a second does not extend the deadline: the trickling connections are closed too.
        deadline = time.monotonic() + 5
        while len(trickler.closed_after) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(trickler.closed_after) == 2
        assert all(seconds <= HEADER_READ_TIMEOUT_SECONDS + 3 for seconds in trickler.closed_after)
        assert request(server.base, "GET", "/status", timeout=PROMPT)[0] == 200
    finally:
        silent.close()
        trickler.close()


def test_a_body_that_does_not_arrive_in_time_is_answered_408_and_the_connection_closed(server):
    sock = socket.create_connection(("127.0.0.1", server.port))
    try:
        sock.sendall(
            b"POST /client/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"email": '
        )
        received, seconds = read_until_closed(sock, BODY_READ_TIMEOUT_SECONDS + 10)
    finally:
        sock.close()
    assert BODY_READ_TIMEOUT_SECONDS - 1 <= seconds <= BODY_READ_TIMEOUT_SECONDS + 3
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), received
    assert b"content-type: application/problem+json" in head.lower()
    assert json.loads(body)["code"] == "request_timeout"


def test_sigterm_lets_a_request_in_flight_finish_then_the_server_exits(server):
    sock = socket.create_connection(("127.0.0.1", server.port))
    body = json.dumps({"email": "nobody@example.com", "password": "wrong-Passw0rd"}).encode()
    sock.sendall(
        b"POST /client/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body[:10]
    )
    time.sleep(0.5)
    server.process.send_signal(signal.SIGTERM)
    time.sleep(1)
    sock.sendall(body[10:])
    received, _ = read_until_closed(sock, 15)
    sock.close()
    assert received.startswith(b"HTTP/1.1 400"), received
    assert json.loads(received.partition(b"\r\n\r\n")[2])["code"] == "invalid_credentials"
    assert server.process.wait(timeout=30) == 0
    # New connections are refused once it has stopped.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2)


@pytest.mark.parametrize("num_proxies", ["0", "1"])
def test_forwarded_headers_are_trusted_only_through_configured_proxies(tmp_path, num_proxies):
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "WALLET_SERVICE_NUM_PROXIES": num_proxies,
        "WALLET_SERVICE_SECURE_HSTS_SECONDS": "3600",
        "WALLET_SERVICE_AUTH_THROTTLE_RATE": "2/minute",
    }
    server = Server(env, tmp_path / "server.log", workers=1)
    server.migrate()
    server.start()
    try:
        # The scheme: HSTS goes only on responses to HTTPS requests.
        forwarded_https = urllib_head(server.base + "/status", {"X-Forwarded-Proto": "https"})
        assert ("strict-transport-security" in forwarded_https) == (num_proxies == "1")
        # The client address: each login attempt claims another one.
        statuses = [
            request(
                server.base,
                "POST",
                "/client/login",
                {"email": "a@example.com", "password": "x"},
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
            )[0]
            for n in range(1, 4)
        ]
        assert statuses == ([400, 400, 429] if num_proxies == "0" else [400, 400, 400])
    finally:
        server.stop()


def urllib_head(url: str, headers: dict[str, str]) -> dict[str, str]:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
        response.read()
        return {name.lower(): value for name, value in response.headers.items()}
