"""The admin for support staff: searchable by email and wallet token; money is read-only there."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.models import User
from accounts.tests.factories import ClientFactory, CompanyFactory
from wallets import services
from wallets.models import Hold, Operation, Wallet
from wallets.tests.factories import DepositFactory, WalletFactory


@pytest.fixture
def staff_client(client, db):
    admin = User.objects.create_superuser("support@example.com", "s3cure-Passw0rd")
    client.force_login(admin)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "/admin/",
        "/admin/accounts/user/",
        "/admin/accounts/client/",
        "/admin/accounts/company/",
        "/admin/wallets/wallet/",
        "/admin/wallets/operation/",
        "/admin/wallets/hold/",
        "/admin/accounts/user/add/",
    ],
)
def test_admin_pages_load(staff_client, url):
    ClientFactory()
    CompanyFactory()
    DepositFactory()
    assert staff_client.get(url).status_code == 200


@pytest.mark.django_db
def test_users_and_wallets_are_searchable_by_email_and_token(staff_client):
    ana = ClientFactory(user__email="ana@example.com").user
    wallet = WalletFactory(owner=ana)
    other = WalletFactory()
    DepositFactory(target=wallet)
    DepositFactory(target=other)

    users = staff_client.get("/admin/accounts/user/", {"q": "ana@"})
    assert users.context["cl"].result_count == 1
    by_email = staff_client.get("/admin/wallets/wallet/", {"q": "ana@example.com"})
    assert list(by_email.context["cl"].result_list) == [wallet]
    by_token = staff_client.get("/admin/wallets/wallet/", {"q": wallet.token})
    assert list(by_token.context["cl"].result_list) == [wallet]
    operations = staff_client.get("/admin/wallets/operation/", {"q": wallet.token})
    assert [operation.target for operation in operations.context["cl"].result_list] == [wallet]


@pytest.mark.django_db
def test_wallets_and_operations_cannot_be_changed_added_or_deleted(staff_client):
    wallet = WalletFactory(balance=Decimal("5.00"))
    operation = DepositFactory(target=wallet)
    response = staff_client.post(f"/admin/wallets/wallet/{wallet.pk}/change/", {"balance": "999.00"})
    assert response.status_code == 403
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("5.00")
    assert staff_client.get(f"/admin/wallets/wallet/{wallet.pk}/change/").status_code == 200  # viewable
    assert staff_client.get("/admin/wallets/wallet/add/").status_code == 403
    assert staff_client.get("/admin/wallets/operation/add/").status_code == 403
    assert staff_client.post(f"/admin/wallets/operation/{operation.pk}/delete/", {"post": "yes"}).status_code == 403
    assert staff_client.post(f"/admin/wallets/wallet/{wallet.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Wallet.objects.count() == 1 and Operation.objects.count() == 1


@pytest.mark.django_db
def test_user_change_page_shows_the_profile_but_never_the_password_hash(staff_client):
    user = ClientFactory(first_name="Ana").user
    page = staff_client.get(f"/admin/accounts/user/{user.pk}/change/")
    assert page.status_code == 200
    assert b"Ana" in page.content
    assert user.password.encode() not in page.content


@pytest.mark.django_db
def test_the_api_is_not_reachable_with_an_admin_session(staff_client):
    assert staff_client.get("/wallet/list").status_code == 401


@pytest.mark.django_db
def test_holds_are_searchable_by_id_and_wallet_and_read_only(staff_client):
    shop, customer = WalletFactory(owner=CompanyFactory().user), WalletFactory(balance=Decimal("50"))
    hold = Hold.objects.get(
        public_id=services.hold_create(merchant=shop.owner, wallet_token=customer.token, amount=Decimal("10")).public_id
    )
    services.hold_create(
        merchant=shop.owner, wallet_token=WalletFactory(balance=Decimal("5")).token, amount=Decimal("1")
    )
    for query in (hold.public_id, customer.token):
        found = staff_client.get("/admin/wallets/hold/", {"q": query})
        assert list(found.context["cl"].result_list) == [hold]
    operations = staff_client.get("/admin/wallets/operation/", {"q": hold.public_id})
    assert [operation.kind for operation in operations.context["cl"].result_list] == ["hold"]
    assert staff_client.get(f"/admin/wallets/hold/{hold.pk}/change/").status_code == 200
    assert staff_client.post(f"/admin/wallets/hold/{hold.pk}/change/", {"status": "voided"}).status_code == 403
    assert staff_client.get("/admin/wallets/hold/add/").status_code == 403
    assert staff_client.post(f"/admin/wallets/hold/{hold.pk}/delete/", {"post": "yes"}).status_code == 403
    hold.refresh_from_db()
    assert hold.status == "pending"
