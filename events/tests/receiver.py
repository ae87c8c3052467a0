"""A real HTTP receiver for webhook tests, on 127.0.0.1 (optionally over TLS), that records what it gets."""

from __future__ import annotations

import contextlib
import datetime
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class Server(ThreadingHTTPServer):
    request_queue_size = 128  # a worker opens dozens of connections at once


class Received:
    def __init__(self, headers: dict[str, str], body: bytes, path: str, peer: tuple = ()):
        self.headers = headers
        self.body = body
        self.path = path
        self.peer = peer  # the client's (address, port): one per connection
        self.at = time.monotonic()

    @property
    def event(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """``answer(request) -> (status, body)`` decides each answer (default 200). ``delay`` seconds are
    slept before answering. ``overlaps`` lists webhook-ids that were being handled twice at once.
    ``hang_up_after`` (seconds): after each answer, wait that long, then close the connection without
    having said so (no ``Connection: close``) and without reading what came meanwhile, as a server whose
    idle timeout ends a kept-alive connection just as the client sends on it."""

    def __init__(
        self,
        answer: Callable[[Received], tuple[int, bytes]] | None = None,
        *,
        port: int = 0,
        delay=0.0,
        hang_up_after: float | None = None,
    ):
        self.answer = answer or (lambda request: (200, b"ok"))
        self.delay = delay
        self.hang_up_after = hang_up_after
        self.received: list[Received] = []
        self.overlaps: list[str] = []
        self.active: set[str] = set()
        self.connections: set = set()  # open ones, ended by stop()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # connections kept alive, as the worker's client keeps them

            def setup(self):
                super().setup()
                with receiver.lock:
                    receiver.connections.add(self.connection)

            def finish(self):
                with receiver.lock:
                    receiver.connections.discard(self.connection)
                super().finish()

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = Received(
                    {k.lower(): v for k, v in self.headers.items()}, body, self.path, self.client_address
                )
                event_id = request.headers.get("webhook-id", "")
                with receiver.lock:
                    if event_id in receiver.active:
                        receiver.overlaps.append(event_id)
                    receiver.active.add(event_id)
                try:
                    if receiver.delay:
                        time.sleep(receiver.delay)
                    status, answer = receiver.answer(request)
                    with receiver.lock:
                        receiver.received.append(request)
                finally:
                    with receiver.lock:
                        receiver.active.discard(event_id)
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                for name, value in getattr(receiver, "extra_headers", {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answer)
                if receiver.hang_up_after is not None:
                    self.wfile.flush()
                    time.sleep(receiver.hang_up_after)
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = Server(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def url(self, host: str = "127.0.0.1", path: str = "/hooks") -> str:
        scheme = "https" if isinstance(self.server.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def peers(self) -> list[tuple]:
        """The connection each request came on, in order."""
        with self.lock:
            return [request.peer for request in self.received]

    def ids(self) -> list[str]:
        with self.lock:
            return [request.headers["webhook-id"] for request in self.received]

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(set(self.ids())) >= count:
                return True
            time.sleep(0.05)
        return False

    def use_tls(self, cert: Path, key: Path) -> Receiver:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        return self

    def stop(self) -> None:
        """Stop listening and end every connection still open (kept alive by a client): a receiver
        stopped is gone, as a process that exits."""
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()
        with self.lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def self_signed(directory: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A certificate for ``name`` only (a DNS name, no IP address), and its key, in ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path
