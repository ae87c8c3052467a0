-- The SQL of one successful charge, as wallets.services.wallet_charge runs it: lock both wallets in one
-- statement in primary-key order, debit the charged wallet, credit the merchant's, insert the ledger row.
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
