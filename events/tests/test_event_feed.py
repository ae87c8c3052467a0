"""GET /events: each change of money or of a hold, written with it, shown to each owner as its own history would."""

from __future__ import annotations

import re
import threading
import time
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connections, transaction

from accounts.tests.factories import ClientFactory
from conftest import authenticated_client
from events.models import Event
from wallet_service.tests.utils import assert_max_queries, assert_problem
from wallets import services
from wallets.errors import InsufficientFunds
from wallets.tests.factories import WalletFactory
from wallets.tests.test_history_apis import next_url

DATE_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def feed(api, **params) -> list[dict]:
    response = api.get("/events", params)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.django_db
def test_every_kind_of_change_writes_its_event_for_each_owner(client_api, company_api):
    shop = WalletFactory(owner=company_api.user)
    wallet = WalletFactory(owner=client_api.user)
    merchant, client = company_api.user, client_api.user
    deposit = services.wallet_deposit(owner=client, wallet_token=wallet.token, amount=Decimal("100"), summary="in")
    charge = services.wallet_charge(merchant=merchant, wallet_token=wallet.token, amount=Decimal("30"), summary="O1")
    with pytest.raises(InsufficientFunds) as failed_charge:
        services.wallet_charge(merchant=merchant, wallet_token=wallet.token, amount=Decimal("500"))
    hold = services.hold_create(merchant=merchant, wallet_token=wallet.token, amount=Decimal("20"), summary="H")
    with pytest.raises(InsufficientFunds) as failed_hold:
        services.hold_create(merchant=merchant, wallet_token=wallet.token, amount=Decimal("500"))
    services.hold_capture(merchant=merchant, hold_id=hold.public_id, amount=Decimal("5"), final=False)
    services.hold_void(merchant=merchant, hold_id=hold.public_id)
    refund = services.wallet_refund(merchant=merchant, operation_id=charge.id, amount=Decimal("10"))

    mine = feed(client_api)
    assert [event["type"] for event in mine] == [
        "deposit.succeeded", "charge.succeeded", "charge.failed", "hold.created", "hold.failed", "hold.captured",
        "hold.voided", "refund.succeeded",
    ]  # fmt: skip
    theirs = feed(company_api)
    assert [event["type"] for event in theirs] == [event["type"] for event in mine][1:]  # no deposit for the shop
    for event in mine + theirs:
        assert event.keys() == {"id", "type", "created", "data"}
        assert event["id"].startswith("evt_") and DATE_RE.fullmatch(event["created"])
    # An operation's event is its history item, as each owner's own history shows it.
    for api, events, own in ((client_api, mine, wallet), (company_api, theirs, shop)):
        history = {item["id"]: item for item in api.get(f"/wallet/history/{own.token}?limit=1000").json()}
        for event in events:
            if not event["type"].startswith("hold.") or event["type"] == "hold.failed":
                assert event["data"] == history[event["data"]["id"]], event["type"]
    by_type = {event["type"]: event["data"] for event in mine}
    assert by_type["deposit.succeeded"]["id"] == deposit.id
    assert by_type["charge.succeeded"]["target__token"] == "…" + shop.token[-4:]
    assert by_type["charge.failed"]["id"] == failed_charge.value.operation.id
    assert by_type["hold.failed"]["id"] == failed_hold.value.operation.id
    assert by_type["refund.succeeded"]["id"] == refund.refund.id
    # A hold event is the hold body, the company's wallet masked for the held wallet's owner.
    assert by_type["hold.created"]["hold"] == hold.public_id
    assert by_type["hold.created"]["merchant_wallet"] == "…" + shop.token[-4:]
    assert (by_type["hold.captured"]["captured"], by_type["hold.captured"]["status"]) == ("5.00", "pending")
    assert by_type["hold.voided"]["status"] == "voided"
    company_view = {event["type"]: event["data"] for event in theirs}
    assert company_view["hold.created"] == company_api.get(f"/wallet/hold/{hold.public_id}").json() | {
        "captured": "0.00", "remaining": "20.00", "status": "pending"
    }  # fmt: skip


@pytest.mark.django_db
def test_an_expired_hold_writes_its_event_when_the_job_marks_it(client_api, company_api):
    WalletFactory(owner=company_api.user)
    wallet = WalletFactory(owner=client_api.user, balance=Decimal("10"))
    hold = services.hold_create(
        merchant=company_api.user, wallet_token=wallet.token, amount=Decimal("5"), expires_in=timedelta(seconds=1)
    )
    assert services.holds_expire() == 0
    time.sleep(1.1)
    assert services.holds_expire() == 1
    for api in (client_api, company_api):
        (expired,) = [event["data"] for event in feed(api) if event["type"] == "hold.expired"]
        assert (expired["hold"], expired["status"], expired["remaining"]) == (hold.public_id, "expired", "0.00")


@pytest.mark.django_db
def test_a_rolled_back_change_writes_no_event(client_api):
    wallet = WalletFactory(owner=client_api.user)
    with pytest.raises(RuntimeError), transaction.atomic():
        services.wallet_deposit(owner=client_api.user, wallet_token=wallet.token, amount=Decimal("1"))
        raise RuntimeError("rolled back")
    assert feed(client_api) == []
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_after_and_limit_page_through_the_feed(client_api):
    wallet = WalletFactory(owner=client_api.user)
    for cents in range(1, 8):
        services.wallet_deposit(owner=client_api.user, wallet_token=wallet.token, amount=Decimal(cents))
    everything = feed(client_api)
    assert [event["data"]["amount"] for event in everything] == [f"{n}.00" for n in range(1, 8)]
    response = client_api.get("/events", {"limit": "3"})
    url = next_url(response)
    assert parse_qs(urlsplit(url).query) == {"limit": ["3"], "after": [everything[2]["id"]]}
    seen = response.json()
    while url:
        response = client_api.get(url)
        seen += response.json()
        url = next_url(response)
    assert seen == everything
    assert feed(client_api, after=everything[-1]["id"]) == []
    assert feed(client_api, after=everything[3]["id"]) == everything[4:]


@pytest.mark.django_db
def test_after_must_be_one_of_the_callers_events(client_api, company_api):
    wallet = WalletFactory(owner=company_api.user)
    services.wallet_deposit(owner=company_api.user, wallet_token=wallet.token, amount=Decimal(1))
    theirs = feed(company_api)[0]["id"]
    for after in (theirs, "evt_unknown", "x" * 41):
        assert "after" in assert_problem(client_api.get("/events", {"after": after}), 400, "validation_error")["errors"]
    for limit in ("0", "1001", "x"):
        assert "limit" in assert_problem(client_api.get("/events", {"limit": limit}), 400, "validation_error")["errors"]
    assert_problem(
        authenticated_client(ClientFactory().user).get("/events", {"after": theirs}), 400, "validation_error"
    )


@pytest.mark.django_db
def test_a_page_costs_two_statements_and_three_with_after(client_api):
    wallet = WalletFactory(owner=client_api.user)
    for _ in range(20):
        services.wallet_deposit(owner=client_api.user, wallet_token=wallet.token, amount=Decimal(1))
    with assert_max_queries(2):
        first = feed(client_api, limit="10")
    with assert_max_queries(3):
        assert len(feed(client_api, after=first[-1]["id"])) == 10


@pytest.mark.django_db(transaction=True)
def test_an_event_committed_late_with_a_smaller_id_is_never_skipped():
    """Two transactions commit out of order: the one with the older id commits second. A consumer that
    read the feed between the two commits and remembers its last id must still get the late event."""
    user = ClientFactory().user
    wallet = WalletFactory(owner=user)
    api = authenticated_client(user)
    early_written, release = threading.Event(), threading.Event()

    def slow_deposit():
        try:
            with transaction.atomic():
                services.wallet_deposit(owner=user, wallet_token=wallet.token, amount=Decimal("1.00"))
                early_written.set()
                assert release.wait(30)
        finally:
            connections.close_all()

    slow = threading.Thread(target=slow_deposit)
    slow.start()
    assert early_written.wait(30)
    # The first transaction holds the wallet's lock: the second deposit goes to another wallet of the user.
    other = WalletFactory(owner=user)
    services.wallet_deposit(owner=user, wallet_token=other.token, amount=Decimal("2.00"))
    # Read while the first is still running: the second committed, but is not shown yet (it would
    # otherwise be listed before an event with a smaller id that is still to commit).
    seen_before = feed(api)
    assert seen_before == []
    release.set()
    slow.join(30)
    # Shown once no older transaction is still running anywhere on the server (here at once; on a
    # server shared with other test runs, after theirs).
    deadline = time.monotonic() + 30
    while len(everything := feed(api)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [event["data"]["amount"] for event in everything] == ["1.00", "2.00"]
    ids = list(Event.objects.order_by("id").values_list("public_id", flat=True))
    assert [event["id"] for event in everything] == ids
    # And a consumer that had seen the first event gets the second after it.
    assert [event["data"]["amount"] for event in feed(api, after=everything[0]["id"])] == ["2.00"]
