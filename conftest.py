"""Fixtures shared by every app's tests: API clients authenticated as a client or a company, and wallets."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db.backends.postgresql.operations import DatabaseOperations
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts.tests.factories import ClientFactory, CompanyFactory
from wallets.tests.factories import WalletFactory


@pytest.fixture(autouse=True)
def _test_settings(settings):
    # A fast hasher keeps hundreds of signups cheap; throttling is switched on by the tests about it.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.WALLET_SERVICE_AUTH_THROTTLE_RATE = None
    settings.WALLET_SERVICE_MAX_WALLETS_BY_CLIENT = 0
    settings.WALLET_SERVICE_REFUSED_ATTEMPTS_PER_HOUR = 0  # switched on by the tests about it
    # /metrics is closed without a token by default; the tests about that close it again.
    settings.WALLET_SERVICE_METRICS_PUBLIC = True


def delete_flush(original):
    """``sql_flush`` for the tests: after each transactional test, Django's flush empties every table with one
    ``TRUNCATE``, which gives each of them a new file (0.6 s for the two dozen tables, a third of
    ``make test-fast``'s time). ``DELETE`` empties the few rows a test leaves in a hundredth of that; the
    triggers (the ledger's append-only rule, the foreign keys' checks) are off for that transaction only
    (``SET LOCAL``), which needs the right to set ``session_replication_role``; without it, ``TRUNCATE``."""
    allowed: dict[str, bool] = {}

    def sql_flush(ops, style, tables, *, reset_sequences=False, allow_cascade=False):
        alias = ops.connection.alias
        if alias not in allowed:
            with ops.connection.cursor() as cursor:
                cursor.execute("SELECT has_parameter_privilege('session_replication_role', 'SET')")
                allowed[alias] = cursor.fetchone()[0]
        if reset_sequences or not tables or not allowed[alias]:
            return original(ops, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        return ["SET LOCAL session_replication_role = replica"] + [f"DELETE FROM {ops.quote_name(t)}" for t in tables]

    return sql_flush


@pytest.fixture(scope="session", autouse=True)
def _flush_by_delete():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DatabaseOperations, "sql_flush", delete_flush(DatabaseOperations.sql_flush))
        yield


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


def authenticated_client(user) -> APIClient:
    _, key = AuthToken.objects.create(user=user)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    api.user = user
    return api


@pytest.fixture
def client_user(db):
    return ClientFactory().user


@pytest.fixture
def company_user(db):
    return CompanyFactory().user


@pytest.fixture
def client_api(client_user) -> APIClient:
    """An APIClient authenticated as a client; ``client_api.user`` is that user."""
    return authenticated_client(client_user)


@pytest.fixture
def company_api(company_user) -> APIClient:
    """An APIClient authenticated as a company; ``company_api.user`` is that user."""
    return authenticated_client(company_user)


@pytest.fixture
def merchant_wallet(company_api):
    """The wallet of ``company_api``'s company."""
    return WalletFactory(owner=company_api.user)


@pytest.fixture
def customer_wallet(db):
    """A client's wallet holding 100.00, owned by none of the API clients above."""
    return WalletFactory(balance=Decimal("100.00"))
