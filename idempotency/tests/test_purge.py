"""Retention: keys live at least 24 hours; purge_idempotency_keys removes older ones."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from idempotency.models import IdempotencyKey
from wallets.tests.factories import WalletFactory

pytestmark = pytest.mark.django_db


def deposit(api, wallet, key):
    return api.post("/wallet/deposit", {"wallet": wallet.token, "amount": "1"}, format="json", HTTP_IDEMPOTENCY_KEY=key)


def age(key: str, hours: float) -> None:
    IdempotencyKey.objects.filter(key=key).update(created_at=timezone.now() - timedelta(hours=hours))


def test_purge_removes_keys_past_the_window_and_keeps_younger_ones(client_api):
    wallet = WalletFactory(owner=client_api.user)
    for key in ("old", "young"):
        assert deposit(client_api, wallet, key).status_code == 200
    age("old", 24.1)
    age("young", 23.9)
    out = StringIO()
    call_command("purge_idempotency_keys", stdout=out)
    assert "Deleted 1 idempotency keys" in out.getvalue()
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["young"]
    # Within the window the key still replays; after it, the same key is a new request.
    assert deposit(client_api, wallet, "young")["Idempotent-Replayed"] == "true"
    again = deposit(client_api, wallet, "old")
    assert again.status_code == 200
    assert "Idempotent-Replayed" not in again
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("3.00")


def test_purge_deletes_in_batches(client_api):
    from idempotency.services import idempotency_purge

    wallet = WalletFactory(owner=client_api.user)
    for index in range(5):
        deposit(client_api, wallet, f"k{index}")
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(days=3))
    assert idempotency_purge(older_than=timedelta(hours=48), batch_size=2) == 5
    assert not IdempotencyKey.objects.exists()


def test_purge_refuses_a_window_shorter_than_the_contract(client_api):
    with pytest.raises(CommandError, match="at least 24"):
        call_command("purge_idempotency_keys", "--hours", "23.5")
    with pytest.raises(CommandError, match="at least 24"):
        call_command("purge_idempotency_keys", "--hours", "nan")
