"""Rendering cost of the hot response bodies, in microseconds per call: no database, no server.

    .venv/bin/python bench/render.py                 # the bodies as the service renders them
    .venv/bin/python bench/render.py --compare       # and the ways of rendering that were tried instead
    .venv/bin/python bench/render.py --instructions  # instructions per body, counted by callgrind

The bodies are those of a charge and a deposit (``wallet_body`` and the charge's ``operation``), a
hold, and a history page of 100 operation items, rendered from in-memory rows by the functions the
views call (what ``docs/PERFORMANCE.md`` quotes). ``--compare`` also times a page rendered three
other ways, from the same rows: the shape's ``TypedDict`` called as a constructor, a generic renderer
looping over a field list, and the DRF serializer drf-spectacular documents (the old way, ~2 ms a page).
Each number is the best of 7 timeit repeats; compare numbers of one run. ``--instructions`` counts
CPU instructions per body instead (valgrind's callgrind, one process per body, collecting only inside
``operator.call`` around the loop, as ``bench/instructions.py`` does; ``PYTHONHASHSEED=0``): steady
on a busy machine, and comparable between two checkouts (copy this file into the other one).
"""

from __future__ import annotations

import operator
import os
import re
import subprocess
import sys
import timeit
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_service.settings")
os.environ.setdefault("WALLET_SERVICE_SECRET_KEY", "insecure-test-only-secret-key-0123456789abcdef")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/wallet_service_render_unused")

import django

django.setup()

from wallets.apis import wallet_body  # noqa: E402
from wallets.items import HoldRow, OperationRow, hold_item, operation_item  # noqa: E402
from wallets.models import Wallet  # noqa: E402

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
READER = 1
KINDS = ("charge", "deposit", "hold", "capture", "refund")


def operation_rows(count: int = 100) -> list[OperationRow]:
    rows = []
    for index in range(count):
        kind = KINDS[index % len(KINDS)]
        deposit = kind == "deposit"
        rows.append(
            OperationRow(
                id=1000 + index,
                kind=kind,
                amount=Decimal("12.50") + index,
                summary=f"Order {index}",
                success=index % 7 != 0,
                created_at=NOW - timedelta(seconds=index),
                source_token=None if deposit else f"source-token-{index:040d}",
                target_token=f"target-token-{index:040d}",
                source_owner_id=None if deposit else (READER if kind != "refund" else 2),
                target_owner_id=2 if kind != "refund" and not deposit else READER,
                source_company="Shop" if kind == "refund" else None,
                target_company=None if deposit or kind == "refund" else "Shop",
                hold_id="h_abcdefghijklmnop" if kind in ("hold", "capture") else None,
                refund_of_id=999 if kind == "refund" else None,
            )
        )
    return rows


def wallet() -> Wallet:
    instance = Wallet(token="w" * 43)
    instance.current_balance = Decimal("1234.50")
    instance.held = Decimal("25.00")
    return instance


HOLD = HoldRow(
    public_id="h_abcdefghijklmnop",
    wallet_token="c" * 43,
    wallet_owner_id=3,
    merchant_wallet_token="m" * 43,
    merchant_owner_id=READER,
    amount=Decimal("25.00"),
    captured=Decimal("5.00"),
    status="pending",
    summary="Order 1234",
    created_at=NOW,
    expires_at=NOW + timedelta(days=7),
    expired=False,
)


def best_us(function, number: int) -> float:
    return min(timeit.repeat(function, number=number, repeat=7)) / number * 1e6


def page(rows):
    return [operation_item(row, reader_id=READER) for row in rows]


def bodies() -> dict:
    """Each hot body's render call, and how many calls to time."""
    rows = operation_rows()
    the_wallet = wallet()
    return {
        "wallet body (info, deposit)": (lambda: wallet_body(the_wallet), 20000),
        "charge body": (lambda: {**wallet_body(the_wallet), "operation": 1234}, 20000),
        "hold body": (lambda: hold_item(HOLD, reader_id=READER), 20000),
        "history page, 100 items": (lambda: page(rows), 200),
    }


def main() -> None:
    if "--count" in sys.argv:  # one body, under callgrind (see instructions())
        label = sys.argv[sys.argv.index("--count") + 1]
        render, number = {**bodies(), **(compare_bodies() if label.startswith("page:") else {})}[label]
        calls = counted_calls(number)
        for _ in range(20):  # warm-up, not collected
            render()
        operator.call(lambda: [render() for _ in range(calls)])
        return
    if "--instructions" in sys.argv:
        labels = [*bodies(), *(compare_bodies() if "--compare" in sys.argv else {})]
        for label in labels:
            print(f"{label:<48} {instructions(label):>12,.0f} instructions")
        return
    results = {label: best_us(render, number) for label, (render, number) in bodies().items()}
    if "--compare" in sys.argv:
        results.update({label: best_us(render, number) for label, (render, number) in compare_bodies().items()})
    for label, value in results.items():
        print(f"{label:<48} {value:>10.1f} us")


def instructions(label: str) -> float:
    """Instructions per call of one body's render, counted by callgrind in a process of its own."""
    command = [
        "valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=_operator_call",
        "--callgrind-out-file=/dev/null", sys.executable, __file__, "--count", label,
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    collected = re.search(r"Collected : (\d+)", run.stderr)
    if run.returncode != 0 or collected is None:
        raise SystemExit(run.stderr)
    _, number = {**bodies(), **(compare_bodies() if label.startswith("page:") else {})}[label]
    return int(collected.group(1)) / counted_calls(number)


def counted_calls(timed: int) -> int:
    """Calls counted under callgrind (about 50 times slower): a hundredth of those timed, at least 20."""
    return max(timed // 100, 20)


def compare_bodies() -> dict:
    """A history page rendered the ways that were weighed against plain dict literals."""
    from wallet_service.api.shapes import serializer_for
    from wallets.items import OperationOutput

    rows = operation_rows()

    def typed_dict_page():
        # The same item, built by calling the TypedDict (dict(**kwargs)) instead of a literal.
        items = []
        for row in rows:
            item = operation_item(row, reader_id=READER)
            items.append(OperationOutput(**item))
        return items

    fields = tuple(OperationOutput.__annotations__)

    def generic_page():
        # A renderer that walks the declaration's field list (what a Shape class rendering by itself does).
        items = []
        for row in rows:
            item = operation_item(row, reader_id=READER)
            items.append({name: item[name] for name in fields if name in item})
        return items

    serializer = serializer_for(OperationOutput)
    items = page(rows)
    drf = [{**item, "date": datetime.fromisoformat(item["date"]), "amount": Decimal(item["amount"])} for item in items]
    return {
        "page: TypedDict constructor after the literal": (typed_dict_page, 200),
        "page: generic field-list renderer": (generic_page, 200),
        "page: DRF serializer (many=True)": (lambda: serializer(drf, many=True).data, 20),
    }


if __name__ == "__main__":
    main()
