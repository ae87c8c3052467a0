"""Money's rules, written once: every amount and balance is a Decimal with two decimals, within these bounds.

The models' CHECK constraints, the request fields, the services and the OpenAPI schema all import them.
"""

from __future__ import annotations

from decimal import Decimal

MONEY_QUANTUM = Decimal("0.01")
# The largest amount of one operation (the contract's), and the column that holds it: numeric(12, 2).
MAX_AMOUNT = Decimal("1000000000.00")
# A balance may grow by many deposits, far past one amount, but it must fit its column: numeric(20, 2).
MAX_BALANCE = Decimal("999999999999999999.99")
