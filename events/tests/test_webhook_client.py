"""The webhook HTTP client against real receivers on 127.0.0.1: pinned address with the name's TLS, deadline,
no redirects, a capped answer, and addresses checked at each send."""

from __future__ import annotations

import ssl
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
