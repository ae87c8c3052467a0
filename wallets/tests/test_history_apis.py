from __future__ import annotations

import base64
import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from accounts.tests.factories import CompanyFactory
from conftest import authenticated_client
from wallet_service.api import cursors
from wallet_service.tests.utils import assert_max_queries, assert_problem
from wallets import services
from wallets.apis import HISTORY_CURSOR
from wallets.errors import InsufficientFunds
from wallets.models import Operation
from wallets.tests.factories import DepositFactory, WalletFactory

DATE_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
LINK_RE = re.compile(r'<(?P<url>[^>]+)>; rel="next"')


def next_url(response) -> str | None:
    link = response.headers.get("Link")
    if link is None:
        return None
    match = LINK_RE.fullmatch(link)
    assert match, link
    return match["url"]


def walk(api, url: str) -> list[dict]:
    """Follow rel="next" links from ``url``; return every item seen, in order."""
    items = []
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.content
        items.extend(response.json())
        url = next_url(response)
    return items


@pytest.mark.django_db
def test_history_holds_deposits_charges_both_ways_and_failed_attempts_newest_first(client_api, company_api):
    wallet = WalletFactory(owner=client_api.user)
    shop = WalletFactory(owner=company_api.user)
    other_shop_user = CompanyFactory().user
    other_shop = WalletFactory(owner=other_shop_user)
    services.wallet_deposit(owner=client_api.user, wallet_token=wallet.token, amount=Decimal("100.00"), summary="in")
    services.wallet_charge(merchant=company_api.user, wallet_token=wallet.token, amount=Decimal("25.00"), summary="O1")
    with pytest.raises(InsufficientFunds):
        services.wallet_charge(merchant=company_api.user, wallet_token=wallet.token, amount=Decimal("500"))
    services.wallet_charge(merchant=other_shop_user, wallet_token=shop.token, amount=Decimal("5.00"), summary="fee")

    response = client_api.get(f"/wallet/history/{wallet.token}")
    assert response.status_code == 200
    assert "Link" not in response.headers
    items = response.json()
    # The client sees its own token; the merchant's is a credential it never sent, so it is masked.
    shop_masked = "…" + shop.token[-4:]
    assert [(i["type"], i["source__token"], i["target__token"], i["amount"], i["success"]) for i in items] == [
        ("charge", wallet.token, shop_masked, "500.00", False),
        ("charge", wallet.token, shop_masked, "25.00", True),
        ("deposit", None, wallet.token, "100.00", True),
    ]
    shop_name = company_api.user.company.name
    assert [item["counterparty"] for item in items] == [
        {"kind": "company", "name": shop_name},
        {"kind": "company", "name": shop_name},
        None,
    ]
    assert [item["summary"] for item in items] == ["", "O1", "in"]
    for item in items:
        assert set(item) == {
            "id", "type", "summary", "source__token", "target__token", "counterparty", "amount", "success", "date"
        }  # fmt: skip
        assert DATE_RE.fullmatch(item["date"])
    assert items[0]["id"] > items[1]["id"] > items[2]["id"]

    merchant_items = company_api.get(f"/wallet/history/{shop.token}").json()
    assert [
        (i["source__token"], i["target__token"], i["amount"], i["success"], i["counterparty"]) for i in merchant_items
    ] == [
        # Charged by another merchant: its wallet token is masked, its name shown.
        (
            shop.token,
            "…" + other_shop.token[-4:],
            "5.00",
            True,
            {"kind": "company", "name": other_shop_user.company.name},
        ),
        # The merchant's own charges show the token it sent; the failed attempt is in its history too.
        (wallet.token, shop.token, "500.00", False, {"kind": "client"}),
        (wallet.token, shop.token, "25.00", True, {"kind": "client"}),
    ]
    # The merchant that charged the shop sees both tokens of its own operation.
    other_items = authenticated_client(other_shop_user).get(f"/wallet/history/{other_shop.token}").json()
    assert [(i["source__token"], i["target__token"], i["counterparty"]) for i in other_items] == [
        (shop.token, other_shop.token, {"kind": "company", "name": company_api.user.company.name})
    ]


@pytest.mark.django_db
def test_history_of_another_users_wallet_is_404(client_api):
    others = WalletFactory()
    DepositFactory(target=others)
    assert_problem(client_api.get(f"/wallet/history/{others.token}"), 404, "not_found")


@pytest.mark.django_db
def test_default_page_is_100_with_a_link_to_the_next(client_api):
    wallet = WalletFactory(owner=client_api.user)
    Operation.objects.bulk_create(
        [Operation(kind="deposit", target=wallet, amount=Decimal(n + 1), success=True) for n in range(150)]
    )
    response = client_api.get(f"/wallet/history/{wallet.token}")
    assert len(response.json()) == 100
    url = next_url(response)
    assert url.startswith("http://testserver/wallet/history/")
    assert set(parse_qs(urlsplit(url).query)) == {"cursor"}
    rest = client_api.get(url)
    assert len(rest.json()) == 50
    assert next_url(rest) is None


@pytest.mark.django_db
def test_following_next_visits_every_operation_exactly_once_even_with_equal_dates(client_api):
    wallet = WalletFactory(owner=client_api.user)
    shop = WalletFactory(owner=CompanyFactory().user)
    same_moment = datetime(2021, 4, 11, 11, 5, 13, tzinfo=UTC)
    Operation.objects.bulk_create(
        [
            # Equal dates on both sides: received (target) and charged (source), interleaved by id.
            Operation(
                kind="deposit" if n % 2 else "charge",
                source=None if n % 2 else wallet,
                target=wallet if n % 2 else shop,
                amount=Decimal(n + 1),
                success=True,
                created_at=same_moment,
            )
            for n in range(23)
        ]
        + [
            Operation(
                kind="deposit",
                target=wallet,
                amount=Decimal(n + 1),
                success=True,
                created_at=same_moment - timedelta(days=n),
            )
            for n in range(1, 12)
        ]
    )
    items = walk(client_api, f"/wallet/history/{wallet.token}?limit=7")
    expected = list(Operation.objects.order_by("-created_at", "-id").values_list("id", flat=True))
    assert [item["id"] for item in items] == expected
    assert len(expected) == 34


@pytest.mark.django_db
def test_operations_arriving_during_a_walk_are_not_part_of_it(client_api, company_api):
    wallet = WalletFactory(owner=client_api.user)
    WalletFactory(owner=company_api.user)
    for n in range(10):
        services.wallet_deposit(owner=client_api.user, wallet_token=wallet.token, amount=Decimal(n + 1))
    existing = set(Operation.objects.values_list("id", flat=True))
    response = client_api.get(f"/wallet/history/{wallet.token}?limit=3")
    seen = [item["id"] for item in response.json()]
    url = next_url(response)
    while url:
        services.wallet_deposit(owner=client_api.user, wallet_token=wallet.token, amount=Decimal("1"))
        services.wallet_charge(merchant=company_api.user, wallet_token=wallet.token, amount=Decimal("1"))
        response = client_api.get(url)
        seen.extend(item["id"] for item in response.json())
        url = next_url(response)
    assert sorted(seen) == sorted(existing)
    assert len(seen) == len(set(seen))


@pytest.mark.django_db
def test_next_link_keeps_limit_from_and_to(client_api):
    wallet = WalletFactory(owner=client_api.user)
    base = datetime(2021, 4, 11, tzinfo=UTC)
    Operation.objects.bulk_create(
        [
            Operation(
                kind="deposit", target=wallet, amount=Decimal(1), success=True, created_at=base + timedelta(hours=n)
            )
            for n in range(48)
        ]
    )
    response = client_api.get(f"/wallet/history/{wallet.token}/?limit=5&from=2021-04-11&to=2021-04-12T00:00:00Z")
    query = parse_qs(urlsplit(next_url(response)).query)
    assert urlsplit(next_url(response)).path == f"/wallet/history/{wallet.token}/"
    assert query["limit"] == ["5"] and query["from"] == ["2021-04-11"] and query["to"] == ["2021-04-12T00:00:00Z"]
    items = walk(client_api, next_url(response))
    assert len(response.json()) + len(items) == 24


@pytest.mark.django_db
def test_from_is_inclusive_and_to_exclusive(client_api):
    wallet = WalletFactory(owner=client_api.user)
    moments = [datetime(2021, 4, 11, 10, 0, 0, tzinfo=UTC) + timedelta(minutes=m) for m in range(5)]
    Operation.objects.bulk_create(
        [Operation(kind="deposit", target=wallet, amount=Decimal(1), success=True, created_at=m) for m in moments]
    )
    response = client_api.get(
        f"/wallet/history/{wallet.token}", {"from": "2021-04-11T10:01:00Z", "to": "2021-04-11T10:03:00Z"}
    )
    assert [item["date"] for item in response.json()] == ["2021-04-11T10:02:00.000000Z", "2021-04-11T10:01:00.000000Z"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "count"),
    [
        ({"from": "2021-04-11"}, 3),  # a plain date is midnight UTC
        ({"to": "2021-04-11"}, 1),
        ({"from": "2021-04-11T00:00:00"}, 3),  # no zone means UTC
        ({"from": "2021-04-11T02:00:00+02:00"}, 3),  # 00:00 UTC
        ({"from": "2021-04-11T00:00:00.000001Z"}, 2),
        ({"from": "2021-04-10T23:59:59Z", "to": "2021-04-11T00:00:00.000001Z"}, 2),
    ],
)
def test_date_filters_use_utc(client_api, params, count):
    wallet = WalletFactory(owner=client_api.user)
    moments = [
        datetime(2021, 4, 10, 23, 59, 59, tzinfo=UTC),
        datetime(2021, 4, 11, 0, 0, 0, tzinfo=UTC),
        datetime(2021, 4, 11, 12, 0, 0, tzinfo=UTC),
        datetime(2021, 4, 12, 0, 0, 0, tzinfo=UTC),
    ]
    Operation.objects.bulk_create(
        [Operation(kind="deposit", target=wallet, amount=Decimal(1), success=True, created_at=m) for m in moments]
    )
    assert len(client_api.get(f"/wallet/history/{wallet.token}", params).json()) == count


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"limit": "99999999999999999999"}, "limit"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2021-13-01"}, "from"),
        ({"to": "2021-04-11T25:00:00Z"}, "to"),
        ({"to": "0001-01-01T00:00:00+01:00"}, "to"),  # before the first representable instant
        ({"from": "2021-04-12", "to": "2021-04-11"}, "from"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": ""}, "cursor"),
        ({"cursor": "eyJ3IjoxfQ:forged"}, "cursor"),
    ],
)
def test_invalid_parameters_are_validation_errors(client_api, params, field):
    wallet = WalletFactory(owner=client_api.user)
    response = client_api.get(f"/wallet/history/{wallet.token}", params)
    assert field in assert_problem(response, 400, "validation_error")["errors"]


@pytest.mark.django_db
def test_limit_bounds_are_accepted(client_api):
    wallet = WalletFactory(owner=client_api.user)
    assert client_api.get(f"/wallet/history/{wallet.token}", {"limit": "1"}).status_code == 200
    assert client_api.get(f"/wallet/history/{wallet.token}", {"limit": "1000"}).status_code == 200


@pytest.mark.django_db
def test_a_cursor_for_another_wallet_is_refused(client_api):
    wallet = WalletFactory(owner=client_api.user)
    other = WalletFactory(owner=client_api.user)
    for _ in range(3):
        DepositFactory(target=other)
    url = next_url(client_api.get(f"/wallet/history/{other.token}?limit=1"))
    cursor = parse_qs(urlsplit(url).query)["cursor"][0]
    response = client_api.get(f"/wallet/history/{wallet.token}", {"cursor": cursor})
    assert "cursor" in assert_problem(response, 400, "validation_error")["errors"]


@pytest.mark.django_db
def test_a_correctly_encrypted_but_malformed_cursor_is_refused(client_api):
    wallet = WalletFactory(owner=client_api.user)
    cursor = cursors.encode_cursor(HISTORY_CURSOR, {"w": wallet.token, "t": "not a date", "i": "x"})
    assert_problem(client_api.get(f"/wallet/history/{wallet.token}", {"cursor": cursor}), 400, "validation_error")


def first_cursor(api, wallet) -> str:
    url = next_url(api.get(f"/wallet/history/{wallet.token}?limit=1"))
    return parse_qs(urlsplit(url).query)["cursor"][0]


@pytest.mark.django_db
def test_a_cursor_shows_nothing_of_the_database(client_api):
    """The cursor carries the walk's snapshot (transaction ids) and row ids: encrypted, none of it shows."""
    wallet = WalletFactory(owner=client_api.user)
    for _ in range(3):
        DepositFactory(target=wallet)
    cursor = first_cursor(client_api, wallet)
    with connection.cursor() as db:
        db.execute("SELECT pg_current_snapshot()::text")
        (snapshot,) = db.fetchone()
    xmin = snapshot.split(":")[0]
    decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    for secret in (xmin, wallet.token, str(Operation.objects.order_by("id").last().id)):
        assert secret.encode() not in decoded
        assert secret not in cursor
    # A cursor that only base64-decodes (the signed-but-readable kind) is not accepted.
    readable = base64.urlsafe_b64encode(b'{"w":"%s","t":"2021-04-11T00:00:00+00:00","i":1}' % wallet.token.encode())
    response = client_api.get(f"/wallet/history/{wallet.token}", {"cursor": readable.decode()})
    assert_problem(response, 400, "validation_error")


@pytest.mark.django_db
def test_a_cursor_expires(client_api, monkeypatch):
    wallet = WalletFactory(owner=client_api.user)
    for _ in range(3):
        DepositFactory(target=wallet)
    cursor = first_cursor(client_api, wallet)
    assert client_api.get(f"/wallet/history/{wallet.token}", {"cursor": cursor}).status_code == 200
    # An hour and a second later (Fernet reads the clock through time.time).
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + cursors.CURSOR_MAX_AGE_SECONDS + 1)
    response = client_api.get(f"/wallet/history/{wallet.token}", {"cursor": cursor})
    assert "expired" in assert_problem(response, 400, "validation_error")["errors"]["cursor"][0]


@pytest.mark.django_db
def test_a_cursor_under_another_key_is_refused(client_api):
    wallet = WalletFactory(owner=client_api.user)
    forged = Fernet(Fernet.generate_key()).encrypt(b'{"w":"x","t":"2021-04-11T00:00:00+00:00","i":1}').decode()
    assert_problem(client_api.get(f"/wallet/history/{wallet.token}", {"cursor": forged}), 400, "validation_error")


@pytest.mark.django_db
def test_validation_error_wins_over_not_found(client_api):
    assert_problem(client_api.get("/wallet/history/unknown", {"limit": "0"}), 400, "validation_error")
    assert_problem(client_api.get("/wallet/history/unknown"), 404, "not_found")


@pytest.mark.django_db
def test_a_full_page_costs_three_queries(client_api):
    wallet = WalletFactory(owner=client_api.user)
    other = WalletFactory(owner=CompanyFactory().user, balance=Decimal("1000"))
    for _ in range(30):
        DepositFactory(target=wallet)
        Operation.objects.create(kind="charge", source=other, target=wallet, amount=Decimal(1), success=True)
        Operation.objects.create(kind="charge", source=wallet, target=other, amount=Decimal(1), success=False)
    # token+user, the page (which checks the wallet's owner itself)
    with assert_max_queries(2):
        assert len(client_api.get(f"/wallet/history/{wallet.token}").json()) == 90


@pytest.mark.django_db
def test_next_link_says_https_when_a_trusted_proxy_says_so(settings, client_api):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    wallet = WalletFactory(owner=client_api.user)
    DepositFactory(target=wallet)
    DepositFactory(target=wallet)
    response = client_api.get(
        f"/wallet/history/{wallet.token}?limit=1", HTTP_HOST="testserver", HTTP_X_FORWARDED_PROTO="https"
    )
    assert next_url(response).startswith("https://testserver/wallet/history/")
