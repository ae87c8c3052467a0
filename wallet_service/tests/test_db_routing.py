"""wallet_service/db_routing.py's rules that need no replica: who may never leave the primary."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import transaction

from wallet_service import db_routing
from wallets.selectors import HistoryPosition


def test_wal_positions_and_history_snapshots_are_parsed():
    assert db_routing.parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert db_routing.split_snapshot("10:20:12,15@0/3000060") == ("10:20:12,15", 0x3000060)
    # A cursor from before replicas: its snapshot alone, which only the primary may continue.
    assert db_routing.split_snapshot("10:20:") == ("10:20:", None)
    position = HistoryPosition(datetime(2026, 1, 1, tzinfo=UTC), 7, "10:20:")
    assert db_routing.history_requirement({"after": position}) == (None, True)
    position = HistoryPosition(datetime(2026, 1, 1, tzinfo=UTC), 7, "10:20:@0/10")
    assert db_routing.history_requirement({"after": position}) == (16, False)
    assert db_routing.history_requirement({"after": None}) == (None, False)


@pytest.mark.django_db
def test_only_a_marked_read_outside_a_transaction_may_leave_the_primary(settings, client_user):
    settings.READ_REPLICAS = ("replica_0",)  # no such database: anything but the primary would fail
    assert db_routing.read_connection(client_user) == db_routing.PRIMARY  # not marked by the authentication
    setattr(client_user, db_routing.READ_LSN, 0)
    assert db_routing.read_connection(client_user, primary_only=True) == db_routing.PRIMARY
    with transaction.atomic():
        assert db_routing.read_connection(client_user) == db_routing.PRIMARY
