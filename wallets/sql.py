"""The ledger's hand-written SQL, each statement with the reason it is not the ORM.

Two rules are written here once and used everywhere:
- a wallet's money is its settled ``balance`` plus its pending credits (``MONEY``);
- a wallet's ``held`` is the remaining amount of its pending holds that have not expired (``HELD``):
  computed when read, so a hold stops counting at its ``expires_at`` whatever background job has run.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ImproperlyConfigured

from accounts.models import Company
from events.models import Event
from wallet_service.money import MAX_BALANCE
from wallets.models import Hold, Operation, PendingCredit, Wallet

WALLETS = Wallet._meta.db_table
PENDING = PendingCredit._meta.db_table
HOLDS = Hold._meta.db_table
OPERATIONS = Operation._meta.db_table
COMPANIES = Company._meta.db_table
EVENTS = Event._meta.db_table


def held(wallet_id: str) -> str:
    """The held amount of the wallet whose id is the SQL expression ``wallet_id``: one range of the
    partial index on pending holds (an empty range for a wallet without holds)."""
    return (
        f"COALESCE((SELECT SUM(h.amount - h.captured) FROM {HOLDS} h WHERE h.wallet_id = {wallet_id} "
        f"AND h.status = 'pending' AND h.expires_at > statement_timestamp()), 0)"
    )


def pending(wallet_id: str) -> str:
    """The wallet's pending credits (money it owns that is not folded into ``balance`` yet)."""
    return f"COALESCE((SELECT SUM(p.amount) FROM {PENDING} p WHERE p.wallet_id = {wallet_id}), 0)"


# Reading wallets with their money and held amount. The ORM builds these subqueries for ~1 ms of CPU
# per request; written out they cost ~0.2 ms (docs/PERFORMANCE.md).
OWNED_WALLETS = (
    f"SELECT w.id, w.token, w.owner_id, w.balance, w.created_at, "
    f"w.balance + {pending('w.id')} AS money, {held('w.id')} AS held_amount "
    f"FROM {WALLETS} w WHERE w.owner_id = %s"
)

# Lock one of an owner's wallets for a deposit (its money is then read and changed by FOLD_AND_ADD, a new
# statement whose snapshot is taken after the lock). Not the ORM: building ``select_for_update().filter().only()``
# was a quarter of a deposit's instructions (bench/INSTRUCTIONS.md); this is the statement it built.
LOCK_OWNED_WALLET = f"SELECT id FROM {WALLETS} WHERE token = %(token)s AND owner_id = %(owner)s FOR NO KEY UPDATE"

# Lock the wallet about to be debited or held, and read in the same round trip what the decision
# needs: its balance and pending credits, its held amount, and the company's own wallet (unlocked: a
# wallet's owner and token never change); and, for the events, both owners and companies' names.
# Not the ORM: a locking read that also answers whether its view of the wallet's holds is current.
# A statement that waited for the lock sees the wallet row as the lock holder left it, but its
# subqueries see the snapshot taken before it waited: ``fresh`` is false when the row changed since
# that snapshot (every change to a hold rewrites its wallet's row), and then the caller reads the
# money again (``FOLD_AND_ADD``) before deciding.
LOCK_FOR_DEBIT = f"""
SELECT w.id, w.balance, {pending("w.id")}, {held("w.id")},
       (SELECT x.xmin FROM {WALLETS} x WHERE x.id = w.id) = w.xmin,
       m.id, m.token, w.owner_id, wc.name, mc.name
  FROM {WALLETS} w
  LEFT JOIN LATERAL (SELECT id, token FROM {WALLETS} WHERE owner_id = %(merchant)s ORDER BY id LIMIT 1) m ON TRUE
  LEFT JOIN {COMPANIES} wc ON wc.user_id = w.owner_id
  LEFT JOIN {COMPANIES} mc ON mc.user_id = %(merchant)s
 WHERE w.token = %(token)s
   FOR NO KEY UPDATE OF w
"""

# Under the wallet's lock: fold its pending credits into ``balance``, add ``amount`` (negative to
# debit, zero to only fold or to mark that the wallet's holds changed), and return the balance and
# held amount after it. Not the ORM: DELETE ... RETURNING feeding an UPDATE is one statement, so the
# money moves between the two places atomically. Rewriting the row, even by zero, is what tells a
# concurrent LOCK_FOR_DEBIT that its snapshot of the holds is stale. A new statement, so its snapshot
# is taken after the lock: the held amount it returns is current.
FOLD_AND_ADD = f"""
WITH folded AS (DELETE FROM {PENDING} WHERE wallet_id = %(wallet)s RETURNING amount)
UPDATE {WALLETS} AS w
   SET balance = w.balance + %(amount)s + COALESCE((SELECT SUM(amount) FROM folded), 0)
 WHERE w.id = %(wallet)s
RETURNING w.balance, {held("w.id")}
"""


# Credit a wallet without waiting for its lock, in one statement. ``free`` takes the lock if nobody
# holds it (SKIP LOCKED: never wait). If it did, the credit and every pending credit go into the
# balance (``folded``, ``credited``); if not, the credit is inserted as pending instead. Data-modifying
# CTEs run exactly once whatever the outer query reads; ``free`` is read by three of them, so it is
# evaluated once, and the lock is taken before the DELETE scans. The result is the wallet's whole
# balance after the credit: from the UPDATE, or (pending) the balance and pending credits this
# statement's snapshot sees plus this credit, whose new row that snapshot cannot see; and its held
# amount. Not the ORM: a conditional lock and three writes in one round trip. Written once, used by CREDIT,
# CHARGE_WRITES and CHARGE_AT_ONCE.
def credit_ctes(wallet: str, *, only_if: str = "TRUE") -> str:
    """The CTEs ``free``, ``folded``, ``credited`` and ``pending`` that credit ``%(amount)s`` to the wallet
    whose id is the parameter ``wallet`` without waiting for its lock (CREDIT, CHARGE_WRITES, CHARGE_AT_ONCE);
    nothing at all (no lock, no write) unless the SQL condition ``only_if`` holds."""
    return f"""free AS (SELECT id FROM {WALLETS} WHERE id = %({wallet})s AND {only_if} FOR NO KEY UPDATE SKIP LOCKED),
     folded AS (DELETE FROM {PENDING} WHERE wallet_id IN (SELECT id FROM free) RETURNING amount),
     credited AS (UPDATE {WALLETS}
                     SET balance = balance + %(amount)s + COALESCE((SELECT SUM(amount) FROM folded), 0)
                   WHERE id IN (SELECT id FROM free)
               RETURNING balance),
     pending AS (INSERT INTO {PENDING} (wallet_id, amount)
                 SELECT %({wallet})s, %(amount)s WHERE NOT EXISTS (SELECT 1 FROM free) AND {only_if}
                 RETURNING amount)"""


# The type of a balance: a wallet's money, pending credits included, must fit it, or its pending credits could
# never be folded into ``balance``. Its largest value is MAX_BALANCE (the CHECK constraint's bound).
_balance = Wallet._meta.get_field("balance")
BALANCE_TYPE = f"numeric({_balance.max_digits}, {_balance.decimal_places})"
_cent = Decimal(10) ** -_balance.decimal_places
if Decimal(10) ** (_balance.max_digits - _balance.decimal_places) - _cent != MAX_BALANCE:
    raise ImproperlyConfigured("MAX_BALANCE must be the largest value of the balance column's type")


def money_after_credit(wallet: str) -> str:
    """The credited wallet's whole balance and held amount after ``credit_ctes(wallet)``. Past MAX_BALANCE the cast
    to BALANCE_TYPE fails (numeric field overflow), and with it the whole statement: nothing is written, and the
    caller refuses the credit (BalanceOverflow), in a transaction or not. No extra read: the sum is the answer's."""
    return f"""CAST(COALESCE(
    (SELECT balance FROM credited),
    (SELECT w.balance + %(amount)s + {pending("w.id")} FROM {WALLETS} w WHERE w.id = %({wallet})s)
) AS {BALANCE_TYPE}), {held(f"%({wallet})s")}"""


CREDIT = f"""
WITH {credit_ctes("wallet")}
SELECT {money_after_credit("wallet")}
"""

# Set a debited wallet's balance (its lock is held and its money was just read). Not ``save()``: the
# model instance was never loaded, only the row's id and balance.
SET_BALANCE = f"UPDATE {WALLETS} SET balance = %(balance)s WHERE id = %(wallet)s"

# A hold with its wallets' tokens and owners, as wallets.items.HoldRow; ``expired`` by the database's
# clock. Not the ORM: the hold is read as a plain row (no model instances) with the clock in the same
# statement.
HOLD_COLUMNS = """h.public_id, w.token, w.owner_id, m.token, m.owner_id, h.amount, h.captured, h.status, h.summary,
       h.created_at, h.expires_at, h.expires_at <= statement_timestamp()"""
HOLD_ROW = f"""
SELECT {HOLD_COLUMNS}
  FROM {HOLDS} h JOIN {WALLETS} w ON w.id = h.wallet_id JOIN {WALLETS} m ON m.id = h.merchant_wallet_id"""

# Lock a hold placed by the company ``merchant`` (a capture or a void): its row as HOLD_ROW reads it,
# and the ids it needs. Not the ORM: the ownership check joins the merchant's wallet, and whether the
# hold is still live must be computed by the database in the same statement as the lock.
LOCK_HOLD = f"""
SELECT h.id, h.wallet_id, h.merchant_wallet_id, {HOLD_COLUMNS}
  FROM {HOLDS} h JOIN {WALLETS} w ON w.id = h.wallet_id JOIN {WALLETS} m ON m.id = h.merchant_wallet_id
 WHERE h.public_id = %(hold)s AND m.owner_id = %(merchant)s
   FOR UPDATE OF h
"""

# Mark the pending holds past their expiry as expired, returning each as HOLD_ROW reads it (for the
# hold.expired events written in the same transaction). Not the ORM: UPDATE ... RETURNING with joins.
EXPIRE_HOLDS = f"""
UPDATE {HOLDS} h SET status = 'expired'
  FROM {WALLETS} w, {WALLETS} m
 WHERE h.status = 'pending' AND h.expires_at <= statement_timestamp()
   AND w.id = h.wallet_id AND m.id = h.merchant_wallet_id
RETURNING {HOLD_COLUMNS}
"""

# Wallets' tokens and owners, and the owners' company names (for the events of a refund). Not the
# ORM: three columns of two tables, as plain rows.
WALLET_PARTIES = f"""
SELECT w.id, w.token, w.owner_id, c.name
  FROM {WALLETS} w LEFT JOIN {COMPANIES} c ON c.user_id = w.owner_id
 WHERE w.id = ANY(%s)
"""

# What has been refunded of an operation so far. Read under the merchant wallet's lock, which every
# refund of that operation takes, so no other refund of it can commit in between.
REFUNDED = f"SELECT COALESCE(SUM(amount), 0) FROM {OPERATIONS} WHERE refund_of_id = %s AND kind = 'refund'"


def events_of_op(unknown_owner: str = "NULL") -> str:
    """The CTE ``events`` that inserts ``%(events)s`` (a JSON list rendered by Python) for the operation the CTE
    ``op`` inserted, merging in its id and date, which only that INSERT knows. An event whose ``owner_id`` is
    null goes to the user the SQL expression ``unknown_owner`` names (CHARGE_AT_ONCE: the charged wallet's
    owner, which only the statement reads)."""
    return f"""events AS (
    INSERT INTO {EVENTS} (public_id, owner_id, type, data)
    SELECT e.public_id, COALESCE(e.owner_id, {unknown_owner}), e.type,
           e.data || jsonb_build_object(
               'id', op.id, 'date', to_char(op.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
      FROM op, jsonb_to_recordset(%(events)s::jsonb) AS e(public_id text, owner_id bigint, type text, data jsonb)
)"""


EVENTS_OF_OP = events_of_op()

# Record an operation and its events in one statement. The events' ``data`` is rendered by Python
# (wallets.items, as each owner sees it) except the operation's id and date, which only this
# INSERT knows: they are merged in here. Not the ORM: a data-modifying CTE feeding a second INSERT
# is one round trip instead of two on every money-moving request.
INSERT_OPERATION = f"""
WITH op AS (
    INSERT INTO {OPERATIONS} (kind, source_id, target_id, amount, summary, success, hold_id, refund_of_id)
    VALUES (%(kind)s, %(source)s, %(target)s, %(amount)s, %(summary)s, %(success)s, %(hold)s, %(refund_of)s)
    RETURNING id, created_at
), {EVENTS_OF_OP}
SELECT id, created_at FROM op
"""

# A successful charge's writes in one statement: the charged wallet's new balance (SET_BALANCE: its lock is held
# and its money was read under it), the merchant's credit without waiting (CREDIT, the same CTEs), and the
# operation with its events (INSERT_OPERATION, the same CTEs). Parameters: ``source`` (the charged wallet) and its
# new ``balance``, ``target`` (the merchant's wallet), ``amount``, ``summary`` and the ``events``. Returns the
# operation's id and date and the merchant wallet's balance and held amount after the credit, as CREDIT does.
# The wallets are two different rows (a charge of the merchant's own wallet is refused before), so no row is
# written twice. Not three statements: each is a round trip, and the Python that sends it (bench/INSTRUCTIONS.md).
CHARGE_WRITES = f"""
WITH debited AS (UPDATE {WALLETS} SET balance = %(balance)s WHERE id = %(source)s),
     {credit_ctes("target")},
     op AS (
    INSERT INTO {OPERATIONS} (kind, source_id, target_id, amount, summary, success)
    VALUES ('charge', %(source)s, %(target)s, %(amount)s, %(summary)s, TRUE)
    RETURNING id, created_at
), {EVENTS_OF_OP}
SELECT op.id, op.created_at, {money_after_credit("target")}
  FROM op
"""

# A whole successful charge in one statement, run in autocommit when no transaction is open (one statement is
# atomic): no BEGIN and no COMMIT round trips. ``locked`` is LOCK_FOR_DEBIT as it is; ``decided`` keeps its row
# only when the charge succeeds as the transactional path (wallet_charge) would decide it, and every write below
# runs only if it did, so otherwise the statement writes nothing and returns no row, and the caller takes that
# path (the reference for every refusal and its order): the wallet missing, the merchant's own, short of money,
# with pending credits to fold, or a snapshot older than the row it locked (``fresh``, see LOCK_FOR_DEBIT). The
# events were rendered by Python (wallets.items) before the statement from what the caller believed of the
# parties (the merchant's wallet from a per-process cache, the charged wallet's owner unknown but not the
# merchant and of company ``%(company)s``, None for a client): ``decided`` also checks that belief, so events
# never name parties other than those the locked rows show. Past the maximum balance the merchant's credit fails
# the statement (money_after_credit), which then writes nothing (no check may come after it: it has committed).
# Parameters: LOCK_FOR_DEBIT's ``merchant`` and ``token``, ``target`` (the merchant's wallet id), ``target_token``,
# ``target_company``, ``company``, ``amount``, ``summary``, ``events`` (the charged wallet owner's with a null
# owner_id). Returns what CHARGE_WRITES does and the charged wallet's id. Not the ORM: one round trip with its
# checks in the database.
CHARGE_AT_ONCE = f"""
WITH locked (id, balance, pending, held, fresh, merchant_wallet, merchant_token, owner_id, company, merchant_company)
     AS MATERIALIZED ({LOCK_FOR_DEBIT}),
     decided AS MATERIALIZED (
    SELECT l.id, l.balance - %(amount)s AS balance, l.owner_id
      FROM locked l
     WHERE l.fresh AND l.pending = 0 AND l.balance - l.held >= %(amount)s
       AND l.merchant_wallet = %(target)s AND l.merchant_token = %(target_token)s
       AND l.merchant_company IS NOT DISTINCT FROM %(target_company)s
       AND l.id <> l.merchant_wallet AND l.owner_id <> %(merchant)s AND l.company IS NOT DISTINCT FROM %(company)s
),
     debited AS (UPDATE {WALLETS} w SET balance = d.balance FROM decided d WHERE w.id = d.id),
     {credit_ctes("target", only_if="EXISTS (SELECT 1 FROM decided)")},
     op AS (
    INSERT INTO {OPERATIONS} (kind, source_id, target_id, amount, summary, success)
    SELECT 'charge', d.id, %(target)s, %(amount)s, %(summary)s, TRUE FROM decided d
    RETURNING id, created_at
), {events_of_op("(SELECT owner_id FROM decided)")}
SELECT op.id, op.created_at, {money_after_credit("target")}, (SELECT id FROM decided)
  FROM op
"""

# Bulk charges (wallets.services.wallet_charge_many). Each statement handles the whole batch, so a
# batch of 1,000 costs the same round trips as a batch of 1. Not the ORM: array parameters (unnest),
# a function for what runs under the locks. The batch's wallet locks are held from the moment they are taken
# to the commit, and every batch crossing one of those wallets waits meanwhile: so what needs no lock (the
# parties, the operations' ids, the events' rendering) is done before, and the rest is one statement.

# Before any lock: the company's wallet and name, and each charged wallet (not the company's own: a charge
# of it is refused as same_wallet) with its owner and the owner's company name (a wallet's token and
# owner never change); and the ids of the batch's operations, one per item whose wallet exists, taken
# here so that each item's events can be rendered with its id before the locks are taken.
BULK_PARTIES = f"""
WITH merchant AS (SELECT id, token FROM {WALLETS} WHERE owner_id = %(merchant)s ORDER BY id LIMIT 1),
     charged AS (SELECT w.id, w.token, w.owner_id, c.name
                   FROM {WALLETS} w LEFT JOIN {COMPANIES} c ON c.user_id = w.owner_id
                  WHERE w.token = ANY(%(items)s) AND w.id NOT IN (SELECT id FROM merchant)),
     ids AS (SELECT nextval(pg_get_serial_sequence('{OPERATIONS}', 'id')) AS id
               FROM unnest(%(items)s::text[]) AS t(token) JOIN charged USING (token))
SELECT 'merchant', m.id, m.token, NULL::bigint, (SELECT name FROM {COMPANIES} WHERE user_id = %(merchant)s),
       (SELECT array_agg(id ORDER BY id) FROM ids)
  FROM merchant m
UNION ALL
SELECT 'charged', id, token, owner_id, name, NULL FROM charged
"""

# Everything under the batch's locks, in one statement: the function wallet_charge_many (wallets/migrations/0009)
# locks the charged wallets in id order, folds their pending credits, decides each item in order, writes the
# debits, the operations and their events (``events``: rendered by the caller, the outcome and the date added
# by the function) and credits the company without waiting. Returns each recorded item's outcome (true: paid,
# false: refused, NULL: its wallet is gone or it was refused past ``refused_limit``, 0: no limit: the ordinals in
# ``throttled``, wallets/migrations/0010) and the company wallet's money and held amount after it. Not
# statements sent one by one: each round trip back to the worker would be spent holding the locks.
CHARGE_MANY = """
SELECT * FROM wallet_charge_many(%(target)s, %(ids)s::bigint[], %(sources)s::bigint[], %(amounts)s::numeric[],
                                 %(summaries)s::text[], %(events)s::jsonb, %(refused_limit)s,
                                 %(refused_window)s)
"""

# The refused attempts (failed charges and holds) of one company's wallet on one wallet within the
# window, newest first: the ``limit``-th one, if there is one, and when it leaves the window. A range of
# the source history index, read only when an attempt is about to be refused.
REFUSED_ATTEMPTS = f"""
SELECT CEIL(EXTRACT(EPOCH FROM created_at + %(window)s - statement_timestamp()))::int
  FROM {OPERATIONS}
 WHERE source_id = %(wallet)s AND target_id = %(merchant_wallet)s AND NOT success
   AND created_at > statement_timestamp() - %(window)s
 ORDER BY created_at DESC, id DESC
OFFSET %(offset)s LIMIT 1
"""
