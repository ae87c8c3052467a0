"""The tests' flush between transactional tests (``delete_flush`` in the root conftest.py): every table
emptied, and the triggers it switches off for its own transaction back on for the next test."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from wallets.models import Operation
from wallets.tests.factories import DepositFactory, WalletFactory


def row_counts() -> dict[str, int]:
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    with connection.cursor() as cursor:
        return {table: cursor.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables}


@pytest.mark.django_db(transaction=True)
def test_the_flush_empties_every_table_and_leaves_the_ledgers_triggers_on():
    DepositFactory(target=WalletFactory(balance=Decimal("5.00")), amount=Decimal("5.00"))
    assert row_counts()["wallets_operation"] == 1
    sql = connection.ops.sql_flush(None, ["wallets_operation"])
    assert sql == ["SET LOCAL session_replication_role = replica", 'DELETE FROM "wallets_operation"']

    call_command("flush", verbosity=0, interactive=False, inhibit_post_migrate=True)

    assert {table: count for table, count in row_counts().items() if count} == {}
    with connection.cursor() as cursor:
        assert cursor.execute("SHOW session_replication_role").fetchone() == ("origin",)
    operation = DepositFactory(target=WalletFactory(balance=Decimal("1.00")), amount=Decimal("1.00"))
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        Operation.objects.filter(pk=operation.pk).delete()
