"""The webhook HTTP client against real receivers on 127.0.0.1: pinned address with the name's TLS, deadline,
no redirects, a capped answer, and addresses checked at each send."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time

import pytest
from standardwebhooks import Webhook

from events.tests.receiver import Receiver, self_signed
from events.webhooks import client
from events.webhooks.secrets import new_secret


@pytest.fixture
def allow_private(settings):
    settings.WALLET_SERVICE_WEBHOOK_ALLOW_PRIVATE = True


def signed(body: bytes, secret: str | None = None) -> tuple[str, dict[str, str]]:
    secret = secret or new_secret()
    return secret, client.signed_headers(secret, "evt_test", body)


@pytest.fixture
def tls_receiver(tmp_path):
    cert, key = self_signed(tmp_path, "localhost")
    receiver = Receiver().use_tls(cert, key).start()
    yield receiver, ssl.create_default_context(cafile=str(cert))
    receiver.stop()


def test_tls_to_the_checked_address_with_the_names_sni_host_and_verification(allow_private, tls_receiver):
    receiver, trusting = tls_receiver
    body = b'{"id":"evt_test"}'
    secret, headers = signed(body)
    outcome = client.send(receiver.url("localhost"), body, headers, context=trusting)
    assert (outcome.outcome, outcome.status, outcome.address) == ("delivered", 200, "127.0.0.1")
    (request,) = receiver.received
    assert request.headers["host"] == f"localhost:{receiver.port}"
    assert Webhook(secret).verify(request.body, request.headers) == {"id": "evt_test"}
    # The certificate names localhost only: by address, or without trusting it, verification fails.
    by_address = client.send(receiver.url("127.0.0.1"), body, headers, context=trusting)
    untrusted = client.send(receiver.url("localhost"), body, headers)
    for outcome in (by_address, untrusted):
        assert outcome.outcome == "network_error" and "CERTIFICATE_VERIFY_FAILED" in outcome.error
    assert len(receiver.received) == 1


def test_loopback_is_refused_at_send_time_without_the_setting(settings):
    receiver = Receiver().start()
    try:
        settings.WALLET_SERVICE_WEBHOOK_ALLOW_PRIVATE = False
        for url in (receiver.url("localhost"), receiver.url("127.0.0.1"), receiver.url("[::ffff:127.0.0.1]")):
            outcome = client.send(url.replace("http:", "https:"), b"{}", {})
            assert outcome.outcome == "refused", outcome
        assert "non-public" in client.send(receiver.url("localhost").replace("http:", "https:"), b"{}", {}).error
        assert client.send(receiver.url("localhost"), b"{}", {}).outcome == "refused"  # http, too
        assert receiver.received == []
    finally:
        receiver.stop()


def test_an_answer_later_than_the_deadline_is_a_failure_within_it(allow_private):
    receiver = Receiver(delay=3).start()
    try:
        started = time.monotonic()
        outcome = client.send(receiver.url(), b"{}", {}, timeout=1)
        assert outcome.outcome == "network_error" and "deadline" in outcome.error
        assert time.monotonic() - started < 1.5
    finally:
        receiver.stop()


def test_redirects_are_not_followed_and_big_answers_are_cut(allow_private):
    receiver = Receiver(lambda request: (302, b"x" * 1_000_000))
    receiver.extra_headers = {"Location": "http://127.0.0.1:1/elsewhere"}
    receiver.start()
    try:
        outcome = client.send(receiver.url(), b"{}", {})
        assert (outcome.outcome, outcome.status) == ("http_error", 302)
        assert len(outcome.error) < 1100
        assert len(receiver.received) == 1
    finally:
        receiver.stop()


def test_nobody_listening_is_a_network_error(allow_private):
    receiver = Receiver()
    url = receiver.url()
    receiver.stop()
    outcome = client.send(url, b"{}", {})
    assert outcome.outcome == "network_error" and "127.0.0.1" in outcome.error


def test_a_connection_is_kept_alive_for_the_next_attempts_to_the_same_address(allow_private):
    receiver = Receiver().start()
    try:
        for _ in range(3):
            assert client.send(receiver.url(), b"{}", {}).delivered
        assert len(receiver.received) == 3 and len(set(receiver.peers())) == 1
    finally:
        receiver.stop()


def test_a_kept_connection_its_server_closed_is_replaced_and_the_request_sent_once(allow_private):
    # The server ends each connection 0.3 s after answering, without saying so: the second request goes
    # out on the kept connection, the server drops it unread, and it is sent again on a new connection.
    receiver = Receiver(hang_up_after=0.3).start()
    try:
        assert client.send(receiver.url(), b'{"n":1}', {"webhook-id": "evt_1"}).delivered
        second = client.send(receiver.url(), b'{"n":2}', {"webhook-id": "evt_2"})
        assert second.delivered, second
        assert receiver.ids() == ["evt_1", "evt_2"]
        assert len(set(receiver.peers())) == 2
        time.sleep(0.4)  # now closed before the next attempt: found so before sending
        assert client.send(receiver.url(), b'{"n":3}', {"webhook-id": "evt_3"}).delivered
        assert receiver.ids() == ["evt_1", "evt_2", "evt_3"] and len(set(receiver.peers())) == 3
    finally:
        receiver.stop()


def test_a_kept_connection_is_not_used_once_its_host_fails_the_check(settings):
    settings.WALLET_SERVICE_WEBHOOK_ALLOW_PRIVATE = True
    receiver = Receiver().start()
    try:
        assert client.send(receiver.url("localhost"), b"{}", {}).delivered
        settings.WALLET_SERVICE_WEBHOOK_ALLOW_PRIVATE = False
        assert client.send(receiver.url("localhost"), b"{}", {}).outcome == "refused"
        assert len(receiver.received) == 1
    finally:
        receiver.stop()


def sent_to_a_trickling_server(scheme: str, answer: bytes) -> tuple[client.Outcome, float]:
    """``client.send`` (timeout 1 s) to a server on 127.0.0.1 that reads the request, then sends ``answer`` one
    byte every 0.1 s: each read is quick, their sum is not. The outcome and the seconds the attempt took."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle():
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            for byte in answer:
                if stop.wait(0.1):
                    return
                with contextlib.suppress(OSError):
                    conn.sendall(bytes([byte]))

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        outcome = client.send(f"{scheme}://127.0.0.1:{listener.getsockname()[1]}/", b"{}", {}, timeout=1)
        return outcome, time.monotonic() - started
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_an_answer_trickling_in_ends_at_the_deadline(allow_private):
    outcome, took = sent_to_a_trickling_server("http", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert outcome.outcome == "network_error" and "deadline" in outcome.error, outcome
    assert took < 1.5


def test_a_tls_handshake_trickling_in_ends_at_the_deadline(allow_private):
    # The answer to the ClientHello: a TLS record header that never completes. The handshake is bounded as a whole
    # by the socket's timeout, what is left of the attempt's (CPython's ssl counts one deadline over its reads).
    outcome, took = sent_to_a_trickling_server("https", b"\x16\x03\x03\x40\x00" + bytes(100))
    assert outcome.outcome == "network_error", outcome
    assert took < 1.5
