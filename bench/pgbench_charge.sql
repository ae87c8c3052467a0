-- The database's own limit for a charge: the issue's reference charge, as the service ran it before the
-- hot-merchant change (lock both wallets in one statement in primary-key order, debit the charged wallet,
-- credit the merchant's, insert the ledger row). wallets.services.wallet_charge now credits the merchant
-- without waiting for its lock (docs/LEDGER.md); this stays the fixed baseline the issue compares with.
-- bench/run.py passes the id ranges (-D src_lo/src_hi/dst_lo/dst_hi) of wallets it created for pgbench.
\set src random(:src_lo, :src_hi)
\set dst random(:dst_lo, :dst_hi)
BEGIN;
SELECT id, token, owner_id, balance, created_at FROM wallets_wallet WHERE id IN (:src, :dst) ORDER BY id FOR UPDATE;
UPDATE wallets_wallet SET balance = balance - 0.01 WHERE id = :src;
UPDATE wallets_wallet SET balance = balance + 0.01 WHERE id = :dst;
INSERT INTO wallets_operation (kind, source_id, target_id, amount, summary, success, created_at)
VALUES ('charge', :src, :dst, 0.01, 'pgbench', true, statement_timestamp()) RETURNING id;
END;
