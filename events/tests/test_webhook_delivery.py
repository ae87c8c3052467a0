"""Webhook delivery in process: a real dispatcher thread, real PostgreSQL, real receivers on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from standardwebhooks import Webhook

from accounts.tests.factories import ClientFactory, CompanyFactory
from conftest import authenticated_client
from events.models import (
    DeliveryStatus,
    Event,
    WebhookAttemptCount,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookFanout,
)
from events.tests.receiver import Receiver
from events.webhooks import client, delivery
from events.webhooks.delivery import DeliveryPolicy, Dispatcher
from wallets import services
from wallets.tests.factories import WalletFactory

FAST = DeliveryPolicy(retry_base=0.2, retry_max=0.5, timeout=2.0, lease=3.0, poll=0.2)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def allow_private(settings):
    settings.WALLET_SERVICE_WEBHOOK_ALLOW_PRIVATE = True


@pytest.fixture
def receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


class Running:
    def __init__(self, policy: DeliveryPolicy):
        self.stop = threading.Event()
        self.dispatcher = Dispatcher(self.stop, policy)
        self.thread = threading.Thread(target=self.dispatcher.run, daemon=True)
        self.thread.start()

    def close(self):
        self.stop.set()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive()


@pytest.fixture
def dispatcher():
    running: list[Running] = []

    def start(policy: DeliveryPolicy = FAST) -> Running:
        running.append(Running(policy))
        return running[-1]

    yield start
    for item in running:
        item.close()


def subscribe(api, url: str, events=None) -> dict:
    response = api.post("/webhooks", {"url": url} | ({"events": events} if events else {}), format="json")
    assert response.status_code == 201, response.content
    return response.json()


# Events are fanned out once no older transaction is still running anywhere on the server (the feed's
# commit-order rule); on a server shared with other test runs, theirs can hold that back for seconds.
SHARED_SERVER_WAIT = 40


def feed_passed(xid: str) -> float:
    """Wait until transaction ``xid`` is older than every running one; the monotonic time it was seen."""
    deadline = time.monotonic() + SHARED_SERVER_WAIT
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s::xid8 < pg_snapshot_xmin(pg_current_snapshot())", [xid])
            if cursor.fetchone()[0]:
                return time.monotonic()
        time.sleep(0.02)
    raise AssertionError("a transaction elsewhere on the server held the feed back for too long")


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_an_event_is_delivered_signed_within_5_seconds_as_the_feed_shows_it(receiver, dispatcher, caplog):
    api = authenticated_client(ClientFactory().user)
    hook = subscribe(api, receiver.url(path="/hooks?shop=1"))
    wallet = WalletFactory(owner=api.user)
    dispatcher()
    with caplog.at_level(logging.INFO, logger="events.webhooks"):
        services.wallet_deposit(owner=api.user, wallet_token=wallet.token, amount=Decimal("12.50"), summary="in")
        committed = time.monotonic()
        visible = feed_passed(str(Event.objects.get().xid))  # at once, unless another run holds it back
        assert receiver.wait_for(1, timeout=SHARED_SERVER_WAIT)
        assert receiver.received[0].at - max(committed, visible) < 5
        (request,) = receiver.received
        assert request.path == "/hooks?shop=1"
        assert request.headers["content-type"] == "application/json"
        assert Webhook(hook["secret"]).verify(request.body, request.headers) == api.get("/events").json()[0]
        assert request.headers["webhook-id"] == request.event["id"]
        assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 10
        assert wait_until(lambda: WebhookDelivery.objects.filter(status="delivered").count() == 1, 5)
    delivered = WebhookDelivery.objects.get()
    assert (delivered.attempts, delivered.last_status, delivered.last_error) == (1, 200, "")
    (line,) = [record for record in caplog.records if record.message == "webhook attempt"]
    assert (line.event, line.outcome, line.attempt, line.endpoint) == (request.event["id"], "delivered", 1, hook["id"])


def test_a_failed_attempt_is_retried_until_the_receiver_answers_2xx(dispatcher):
    answers = iter([(500, b"down"), (503, b"still down")])
    receiver = Receiver(lambda request: next(answers, (200, b"ok"))).start()
    try:
        api = authenticated_client(ClientFactory().user)
        subscribe(api, receiver.url())
        wallet = WalletFactory(owner=api.user)
        services.wallet_deposit(owner=api.user, wallet_token=wallet.token, amount=Decimal("1"))
        dispatcher()
        assert wait_until(lambda: WebhookDelivery.objects.filter(status="delivered").exists(), SHARED_SERVER_WAIT)
        assert len(receiver.received) == 3 and len(set(receiver.ids())) == 1
        assert WebhookDelivery.objects.get().attempts == 3
    finally:
        receiver.stop()


def test_a_receiver_down_for_a_while_gets_everything_when_it_comes_back(dispatcher):
    down = Receiver()
    port = down.port
    url = down.url()
    down.stop()  # nobody listens on the port for now
    api = authenticated_client(ClientFactory().user)
    subscribe(api, url)
    wallet = WalletFactory(owner=api.user)
    for cents in range(1, 6):
        services.wallet_deposit(owner=api.user, wallet_token=wallet.token, amount=Decimal(cents))
    dispatcher()
    assert wait_until(lambda: WebhookDelivery.objects.filter(attempts__gte=2).count() == 5, SHARED_SERVER_WAIT)
    assert "Connection refused" in WebhookDelivery.objects.first().last_error
    receiver = Receiver(port=port).start()
    try:
        assert receiver.wait_for(5, timeout=SHARED_SERVER_WAIT)
        assert set(receiver.ids()) == {event["id"] for event in api.get("/events").json()}
    finally:
        receiver.stop()


def test_each_owner_gets_its_own_rendering_and_only_subscribed_types_after_subscribing(receiver, dispatcher):
    client = authenticated_client(ClientFactory().user)
    company = authenticated_client(CompanyFactory().user)
    wallet = WalletFactory(owner=client.user)
    shop = WalletFactory(owner=company.user)
    services.wallet_deposit(owner=client.user, wallet_token=wallet.token, amount=Decimal("100"))  # before: not sent
    subscribe(client, receiver.url(path="/client"))
    subscribe(company, receiver.url(path="/company"), events=["charge.succeeded"])
    services.wallet_deposit(owner=client.user, wallet_token=wallet.token, amount=Decimal("5"))
    services.wallet_charge(merchant=company.user, wallet_token=wallet.token, amount=Decimal("30"), summary="O1")
    dispatcher()
    assert receiver.wait_for(3, timeout=SHARED_SERVER_WAIT)
    time.sleep(0.5)  # nothing else may come
    by_path = {}
    for request in receiver.received:
        by_path.setdefault(request.path, []).append(request.event)
    assert sorted(event["type"] for event in by_path["/client"]) == ["charge.succeeded", "deposit.succeeded"]
    assert [event["type"] for event in by_path["/company"]] == ["charge.succeeded"]
    client_charge = next(event for event in by_path["/client"] if event["type"] == "charge.succeeded")
    company_charge = by_path["/company"][0]
    # The charged client sees the shop's wallet masked; the shop, which charged it by token, sees the token.
    assert client_charge["data"]["target__token"] == "…" + shop.token[-4:]
    assert company_charge["data"]["source__token"] == wallet.token
    for events, api in ((by_path["/client"], client), (by_path["/company"], company)):
        feed = {event["id"]: event for event in api.get("/events").json()}
        assert all(event == feed[event["id"]] for event in events)
    assert shop.token not in json.dumps(by_path["/client"], ensure_ascii=False)


def test_an_event_committed_late_with_an_older_xid_is_not_skipped(receiver):
    api = authenticated_client(ClientFactory().user)
    subscribe(api, receiver.url())
    first, second = WalletFactory(owner=api.user), WalletFactory(owner=api.user)
    written, release = threading.Event(), threading.Event()

    def slow_deposit():
        try:
            with transaction.atomic():
                services.wallet_deposit(owner=api.user, wallet_token=first.token, amount=Decimal("1"))
                written.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_deposit)
    thread.start()
    assert written.wait(10)
    services.wallet_deposit(owner=api.user, wallet_token=second.token, amount=Decimal("2"))  # commits first
    delivery.fan_out(FAST)
    assert WebhookDelivery.objects.count() == 0  # the later xid waits for the older transaction
    release.set()
    thread.join()
    assert wait_until(lambda: (delivery.fan_out(FAST), WebhookDelivery.objects.count())[1] == 2, SHARED_SERVER_WAIT)


def claimed_delivery(receiver: Receiver, policy: DeliveryPolicy) -> tuple[delivery.Claim, float]:
    """A delivery to ``receiver`` claimed, and time.monotonic() just before the claim."""
    api = authenticated_client(ClientFactory().user)
    subscribe(api, receiver.url())
    wallet = WalletFactory(owner=api.user)
    services.wallet_deposit(owner=api.user, wallet_token=wallet.token, amount=Decimal("1"))
    feed_passed(str(Event.objects.get().xid))
    assert delivery.fan_out(policy) == 1
    claimed = time.monotonic()
    (claim,) = delivery.claim(policy, slots=1)
    return claim, claimed


def test_an_attempt_that_starts_late_ends_when_its_lease_does_not_its_timeout_later():
    # A starved thread pool starts the attempt a second after the claim; the receiver is slower than
    # the timeout. Another worker may take the delivery when the lease runs out: the attempt must be over.
    policy = DeliveryPolicy(timeout=1.8, lease=2.0)
    slow = Receiver(delay=5).start()
    try:
        claim, claimed = claimed_delivery(slow, policy)
        time.sleep(1.0)
        outcome = delivery.attempt(claim, policy)
        ended = time.monotonic()
    finally:
        slow.stop()
    assert outcome.outcome == "network_error", outcome
    assert ended - claimed < policy.lease + 0.4  # not 1.0 + 1.8: the lease ends first


def test_an_attempt_whose_lease_ran_out_before_it_started_is_not_sent(receiver):
    policy = DeliveryPolicy(timeout=0.5, lease=0.6)
    claim, _ = claimed_delivery(receiver, policy)
    time.sleep(0.7)
    outcome = delivery.attempt(claim, policy)
    assert (outcome.outcome, outcome.error) == (
        "network_error",
        "not sent: the lease ran out before the attempt could start",
    )
    time.sleep(0.2)
    assert receiver.received == [] and not receiver.active


def test_an_endpoint_failing_everything_is_disabled_and_says_so(dispatcher):
    receiver = Receiver(lambda request: (500, b"no")).start()
    try:
        api = authenticated_client(ClientFactory().user)
        hook = subscribe(api, receiver.url())
        wallet = WalletFactory(owner=api.user)
        for amount in ("1", "2"):
            services.wallet_deposit(owner=api.user, wallet_token=wallet.token, amount=Decimal(amount))
        dispatcher(DeliveryPolicy(retry_base=0.2, retry_max=0.2, timeout=2, lease=3, poll=0.2, disable_after=1))
        assert wait_until(lambda: WebhookEndpoint.objects.get().disabled_at is not None, SHARED_SERVER_WAIT)
        (listed,) = api.get("/webhooks").json()
        assert listed["id"] == hook["id"] and listed["disabled"] is True and listed["disabled_at"]
        assert wait_until(lambda: not WebhookDelivery.objects.filter(status="pending").exists(), 5)
        assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"failed"}
    finally:
        receiver.stop()


def test_retries_end_in_failed_after_the_window(dispatcher):
    receiver = Receiver(lambda request: (500, b"no")).start()
    try:
        api = authenticated_client(ClientFactory().user)
        subscribe(api, receiver.url())
        wallet = WalletFactory(owner=api.user)
        services.wallet_deposit(owner=api.user, wallet_token=wallet.token, amount=Decimal("1"))
        dispatcher(DeliveryPolicy(retry_base=0.2, retry_max=0.3, timeout=2, lease=3, poll=0.2, window=1.5))
        assert wait_until(lambda: WebhookDelivery.objects.filter(status="failed").exists(), SHARED_SERVER_WAIT)
        failed = WebhookDelivery.objects.get()
        assert failed.attempts >= 3 and failed.last_status == 500 and "HTTP 500" in failed.last_error
        assert WebhookEndpoint.objects.get().disabled_at is None
    finally:
        receiver.stop()


def test_a_url_that_now_resolves_to_loopback_is_refused_at_delivery(receiver, dispatcher, settings):
    api = authenticated_client(ClientFactory().user)
    subscribe(api, receiver.url("localhost").replace("http:", "https:"))
    settings.WALLET_SERVICE_WEBHOOK_ALLOW_PRIVATE = False
    wallet = WalletFactory(owner=api.user)
    services.wallet_deposit(owner=api.user, wallet_token=wallet.token, amount=Decimal("1"))
    dispatcher()
    assert wait_until(lambda: WebhookDelivery.objects.filter(attempts__gte=2).exists(), SHARED_SERVER_WAIT)
    assert "non-public address" in WebhookDelivery.objects.get().last_error
    assert receiver.received == []


def test_metrics_and_purge(receiver, dispatcher, api_client):
    api = authenticated_client(ClientFactory().user)
    subscribe(api, receiver.url())
    wallet = WalletFactory(owner=api.user)
    services.wallet_deposit(owner=api.user, wallet_token=wallet.token, amount=Decimal("1"))
    before = api_client.get("/metrics").content.decode()
    assert "webhook_deliveries_pending" in before
    dispatcher()
    assert wait_until(lambda: WebhookDelivery.objects.filter(status="delivered").exists(), SHARED_SERVER_WAIT)
    metrics = api_client.get("/metrics").content.decode()
    assert 'webhook_delivery_attempts_total{outcome="delivered"} 1.0' in metrics
    assert "webhook_deliveries_pending 0.0" in metrics
    assert "webhook_oldest_undelivered_event_age_seconds 0.0" in metrics
    call_command("purge_webhook_deliveries", "--days", "1")
    assert WebhookDelivery.objects.count() == 1  # delivered just now: kept
    call_command("purge_webhook_deliveries", "--days", "0")
    assert WebhookDelivery.objects.count() == 0
    assert DeliveryStatus.DELIVERED == "delivered"


def test_events_of_owners_without_endpoints_are_passed_and_an_endpoint_made_later_gets_what_follows(receiver):
    api = authenticated_client(ClientFactory().user)
    wallet = WalletFactory(owner=api.user)
    services.wallet_deposit(owner=api.user, wallet_token=wallet.token, amount=Decimal("1"))
    feed_passed(str(Event.objects.get().xid))
    assert delivery.fan_out(FAST) == 0
    (position,) = WebhookFanout.objects.values_list("event_id", flat=True)
    assert position == Event.objects.get().id  # passed, though no delivery was made
    subscribe(api, receiver.url())
    services.wallet_deposit(owner=api.user, wallet_token=wallet.token, amount=Decimal("2"))
    later = Event.objects.order_by("-id").first()
    feed_passed(str(later.xid))
    assert delivery.fan_out(FAST) == 1
    assert list(WebhookDelivery.objects.values_list("event_id", flat=True)) == [later.id]


def test_the_fan_out_makes_its_position_again_if_it_is_gone(receiver):
    api = authenticated_client(ClientFactory().user)
    subscribe(api, receiver.url())
    WebhookFanout.objects.all().delete()  # as a flush leaves it
    wallet = WalletFactory(owner=api.user)
    services.wallet_deposit(owner=api.user, wallet_token=wallet.token, amount=Decimal("1"))
    feed_passed(str(Event.objects.get().xid))
    assert delivery.fan_out(FAST) == 1
    assert WebhookFanout.objects.get().event_id == Event.objects.get().id


def pending_deliveries(receiver: Receiver, count: int, endpoints: int = 1) -> list[WebhookEndpoint]:
    """``count`` deposits for each of ``endpoints`` subscribed users, fanned out."""
    users = []
    for _ in range(endpoints):
        api = authenticated_client(ClientFactory().user)
        subscribe(api, receiver.url())
        users.append((api.user, WalletFactory(owner=api.user)))
    for user, wallet in users:
        for cents in range(1, count + 1):
            services.wallet_deposit(owner=user, wallet_token=wallet.token, amount=Decimal(cents) / 100)
    feed_passed(str(Event.objects.order_by("-id").values_list("xid", flat=True).first()))
    assert delivery.fan_out(FAST) == count * endpoints
    return list(WebhookEndpoint.objects.order_by("id"))


def test_fan_out_claim_and_record_are_one_statement_each_for_many_deliveries(receiver, django_assert_num_queries):
    api = authenticated_client(ClientFactory().user)
    subscribe(api, receiver.url())
    wallet = WalletFactory(owner=api.user)
    for cents in range(1, 7):
        services.wallet_deposit(owner=api.user, wallet_token=wallet.token, amount=Decimal(cents))
    feed_passed(str(Event.objects.order_by("-id").values_list("xid", flat=True).first()))
    with django_assert_num_queries(1):
        assert delivery.fan_out(FAST) == 6
    policy = replace(FAST, per_endpoint=8)
    with django_assert_num_queries(1):
        claims = delivery.claim(policy, slots=8)
    assert len(claims) == 6
    outcomes = [client.Outcome("delivered", status=204)] * 4 + [client.Outcome("http_error", 500, "HTTP 500")] * 2
    results = [(claim_, outcome, 0.01, time.time()) for claim_, outcome in zip(claims, outcomes, strict=True)]
    with django_assert_num_queries(1):
        delivery.record(policy, results)
    assert WebhookDelivery.objects.filter(status="delivered").count() == 4
    retried = WebhookDelivery.objects.filter(status="pending")
    assert [(row.attempts, row.last_status, row.last_error) for row in retried] == [(1, 500, "HTTP 500")] * 2
    counts = dict(WebhookAttemptCount.objects.values_list("outcome", "count"))
    assert counts == {"delivered": 4, "http_error": 2}


def test_a_claim_takes_at_most_per_endpoint_counting_attempts_in_flight(receiver):
    first, second = pending_deliveries(receiver, 6, endpoints=2)
    claims = delivery.claim(replace(FAST, per_endpoint=4), slots=20, busy=Counter({first.id: 3}))
    assert Counter(claim_.endpoint_id for claim_ in claims) == {first.id: 1, second.id: 4}
    assert len(delivery.claim(replace(FAST, per_endpoint=4), slots=3)) == 3  # the slots bound it too


def test_a_late_result_is_fenced_out_of_a_batch_by_its_attempt_number(receiver):
    pending_deliveries(receiver, 1)
    short = replace(FAST, timeout=0.1, lease=0.2)
    (late,) = delivery.claim(short, slots=1)
    time.sleep(0.3)  # the lease runs out: taken again
    (current,) = delivery.claim(short, slots=1)
    assert (late.attempt, current.attempt) == (1, 2)
    failed, delivered = client.Outcome("network_error", error="timed out"), client.Outcome("delivered", status=200)
    # Both results in one batch, the late one last: the newer attempt's result stands.
    delivery.record(short, [(current, delivered, 0.01, time.time()), (late, failed, 0.2, time.time())])
    row = WebhookDelivery.objects.get()
    assert (row.status, row.attempts, row.last_status, row.last_error) == ("delivered", 2, 200, "")
    delivery.record(short, [(late, failed, 0.2, time.time())])  # alone, later: nothing either
    assert WebhookDelivery.objects.get().last_error == ""


def test_an_endpoints_results_in_one_batch_count_in_the_order_they_ended(receiver):
    (endpoint,) = pending_deliveries(receiver, 4)
    claims = delivery.claim(replace(FAST, per_endpoint=8), slots=4)
    ok, failed = client.Outcome("delivered", status=200), client.Outcome("http_error", 500, "HTTP 500")

    def record(*pairs):
        delivery.record(FAST, [(claim_, outcome, 0.01, time.time()) for claim_, outcome in pairs])
        endpoint.refresh_from_db()

    record((claims[0], ok), (claims[1], failed))
    assert endpoint.failing_since is not None  # failing since the failure after the success
    record((claims[2], failed), (claims[3], ok))
    assert endpoint.failing_since is None and endpoint.disabled_at is None


def test_an_endpoint_failing_for_disable_after_is_disabled_by_a_batch_and_its_pending_deliveries_fail(receiver):
    (endpoint,) = pending_deliveries(receiver, 3)
    WebhookEndpoint.objects.update(failing_since=timezone.now() - timedelta(days=6))
    (claim_,) = delivery.claim(FAST, slots=1)
    delivery.record(FAST, [(claim_, client.Outcome("http_error", 500, "HTTP 500"), 0.01, time.time())])
    endpoint.refresh_from_db()
    assert endpoint.disabled_at is not None
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"failed"}
    assert WebhookDelivery.objects.filter(last_error=delivery.DISABLED_ERROR).count() == 3


def test_a_pending_delivery_of_a_disabled_endpoint_is_failed_when_claimed_not_sent(receiver):
    pending_deliveries(receiver, 2)
    WebhookEndpoint.objects.update(disabled_at=timezone.now())  # as a worker stopped mid-record leaves it
    assert delivery.claim(FAST, slots=8) == []
    assert set(WebhookDelivery.objects.values_list("status", "last_error")) == {("failed", delivery.DISABLED_ERROR)}


def test_an_endpoint_failing_for_disable_after_with_a_later_success_in_the_batch_is_not_disabled(receiver):
    (endpoint,) = pending_deliveries(receiver, 3)
    WebhookEndpoint.objects.update(failing_since=timezone.now() - timedelta(days=6))
    failed, first = delivery.claim(replace(FAST, per_endpoint=8), slots=2)
    ok = client.Outcome("delivered", status=200)
    delivery.record(
        FAST,
        [(failed, client.Outcome("http_error", 500, "HTTP 500"), 0.01, time.time()), (first, ok, 0.01, time.time())],
    )
    endpoint.refresh_from_db()
    assert endpoint.disabled_at is None and endpoint.failing_since is None
    assert WebhookDelivery.objects.filter(status="pending").count() == 2  # the failed one, to retry, and the third


def test_a_receiver_s_nul_bytes_in_its_answer_are_recorded_not_a_stalled_worker(receiver):
    pending_deliveries(receiver, 1)
    (claim_,) = delivery.claim(FAST, slots=1)
    outcome = client.Outcome("http_error", 500, "HTTP 500: bad\x00answer")  # as the body decodes
    delivery.record(FAST, [(claim_, outcome, 0.01, time.time())])
    row = WebhookDelivery.objects.get()
    assert (row.status, row.attempts, row.last_status, row.last_error) == (
        "pending",
        1,
        500,
        "HTTP 500: bad\ufffdanswer",
    )


def test_a_late_attempt_s_result_leaves_the_newer_attempt_of_its_delivery_in_flight(receiver):
    pending_deliveries(receiver, 1)
    short = replace(FAST, timeout=0.1, lease=0.2)
    worker = Dispatcher(threading.Event(), short)
    (late,) = delivery.claim(short, slots=1)
    time.sleep(0.3)  # the lease runs out while the first attempt still runs: the delivery is claimed again
    (current,) = delivery.claim(short, slots=1)
    worker._started(late)
    worker._started(current)
    worker.done.put((late, client.Outcome("network_error", error="timed out"), 0.3, time.time()))
    worker.ended = 1
    worker._collect()
    assert list(worker.in_flight.values()) == [current]  # still counted for its endpoint, still waited for


def test_the_purge_deletes_deliveries_failed_without_an_attempt_once_old_enough(receiver):
    pending_deliveries(receiver, 3)
    WebhookEndpoint.objects.update(failing_since=timezone.now() - timedelta(days=6))
    (claim_,) = delivery.claim(FAST, slots=1)
    delivery.record(FAST, [(claim_, client.Outcome("http_error", 500, "HTTP 500"), 0.01, time.time())])
    # Disabled: its two other deliveries failed without ever being attempted.
    assert WebhookDelivery.objects.filter(status="failed", last_attempt_at__isnull=True).count() == 2
    WebhookDelivery.objects.update(last_attempt_at=F("last_attempt_at") - timedelta(days=2))
    call_command("purge_webhook_deliveries", "--days", "1")
    assert WebhookDelivery.objects.count() == 2  # the attempted one went; the others are not old enough
    WebhookDelivery.objects.update(created_at=timezone.now() - timedelta(days=2))
    call_command("purge_webhook_deliveries", "--days", "1")
    assert not WebhookDelivery.objects.exists()
