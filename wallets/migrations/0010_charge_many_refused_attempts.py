"""wallet_charge_many() applies the refused-attempts limit (WALLET_SERVICE_REFUSED_ATTEMPTS_PER_HOUR) to its items.

A lone charge refused for insufficient funds past the company's limit of refused attempts on that wallet within the
hour is answered 429 and leaves no trace (wallets.services._check_refused_attempts); a bulk charge's items recorded
every refusal, so one batch could probe a wallet's balance by bisection where the limit is on. The function now
takes the limit (``p_refused_limit``, 0: off) and its window (``p_refused_window``: the caller's
wallets.services.REFUSED_ATTEMPTS_WINDOW, the lone charge's) and returns the ordinals of the items it refused that way
(``throttled``): not recorded, no events. Everything else is 0009's function, unchanged.

A new overload beside 0009's (six arguments), which stays: during a rolling deploy the processes still running the
previous release keep calling it. A later release drops it.
"""

from django.db import migrations

FUNCTION = r"""
CREATE FUNCTION wallet_charge_many(
    p_target bigint, p_ids bigint[], p_sources bigint[], p_amounts numeric[], p_summaries text[], p_events jsonb,
    p_refused_limit integer, p_refused_window interval
) RETURNS TABLE (outcomes boolean[], balance numeric, held numeric, throttled integer[])
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    item record;
    decided boolean[] := array_fill(NULL::boolean, ARRAY[coalesce(array_length(p_ids, 1), 0)]);
    total numeric := 0;
    wallet bigint;
    available numeric;
    left_over numeric;
    debited boolean := false;
    debited_ids bigint[] := '{}';
    debited_balances numeric[] := '{}';
    credited numeric;
    refused integer;  -- the current wallet's refused attempts by this company within the window, this batch's included
    throttled_items integer[] := '{}';
BEGIN
    -- Lock every charged wallet, in id order: two batches crossing the same wallets cannot deadlock.
    PERFORM 1 FROM wallets_wallet WHERE id = ANY(p_sources) ORDER BY id FOR NO KEY UPDATE;
    -- Fold their pending credits into their balances (no one else folds them while the locks are held).
    WITH folded AS (DELETE FROM wallets_pendingcredit WHERE wallet_id = ANY(p_sources) RETURNING wallet_id, amount),
         sums AS (SELECT wallet_id, SUM(amount) AS total FROM folded GROUP BY wallet_id)
    UPDATE wallets_wallet w SET balance = w.balance + s.total FROM sums s WHERE w.id = s.wallet_id;
    -- Each item in order, as if sent alone: later items of a wallet see the effect of earlier ones. A wallet
    -- gone since the caller read it (deleted with its owner) leaves its items undecided (NULL): not found.
    FOR item IN
        SELECT v.ord, v.source, v.amount, w.balance,
               COALESCE((SELECT SUM(h.amount - h.captured) FROM wallets_hold h WHERE h.wallet_id = w.id
                            AND h.status = 'pending' AND h.expires_at > statement_timestamp()), 0) AS held
          FROM unnest(p_sources, p_amounts) WITH ORDINALITY AS v(source, amount, ord)
          LEFT JOIN wallets_wallet w ON w.id = v.source
         ORDER BY v.source, v.ord
    LOOP
        IF item.source IS DISTINCT FROM wallet THEN
            IF debited THEN
                debited_ids := debited_ids || wallet;
                debited_balances := debited_balances || left_over;
            END IF;
            wallet := item.source;
            available := item.balance - item.held;
            left_over := item.balance;
            debited := false;
            refused := NULL;
        END IF;
        IF available IS NOT NULL THEN
            decided[item.ord] := available >= item.amount;
            IF decided[item.ord] THEN
                available := available - item.amount;
                left_over := left_over - item.amount;
                total := total + item.amount;
                debited := true;
            ELSIF p_refused_limit > 0 THEN
                -- WALLET_SERVICE_REFUSED_ATTEMPTS_PER_HOUR, as for a lone charge (wallets.sql.REFUSED_ATTEMPTS): past
                -- the company's limit of refused attempts on this wallet within the window, the item is refused
                -- without a trace (429). Read only on the way to a refusal, once per wallet.
                IF refused IS NULL THEN
                    SELECT count(*) INTO refused FROM (
                        SELECT 1 FROM wallets_operation
                         WHERE source_id = item.source AND target_id = p_target AND NOT success
                           AND created_at > statement_timestamp() - p_refused_window
                         LIMIT p_refused_limit) AS recent;
                END IF;
                IF refused >= p_refused_limit THEN
                    decided[item.ord] := NULL;
                    throttled_items := throttled_items || item.ord::integer;
                ELSE
                    refused := refused + 1;
                END IF;
            END IF;
        END IF;
    END LOOP;
    IF debited THEN
        debited_ids := debited_ids || wallet;
        debited_balances := debited_balances || left_over;
    END IF;
    UPDATE wallets_wallet w SET balance = v.balance
      FROM unnest(debited_ids, debited_balances) AS v(id, balance) WHERE w.id = v.id;
    -- The operations and their events (rendered by the caller; the outcome and the date are added here).
    WITH op AS (
        INSERT INTO wallets_operation (id, kind, source_id, target_id, amount, summary, success)
        SELECT v.id, 'charge', v.source, p_target, v.amount, v.summary, decided[v.ord]
          FROM unnest(p_ids, p_sources, p_amounts, p_summaries) WITH ORDINALITY AS v(id, source, amount, summary, ord)
         WHERE decided[v.ord] IS NOT NULL
        RETURNING id, created_at, success
    )
    INSERT INTO events_event (public_id, owner_id, type, data)
    SELECT e.public_id, e.owner_id, CASE WHEN op.success THEN 'charge.succeeded' ELSE 'charge.failed' END,
           e.data || jsonb_build_object(
               'success', op.success,
               'date', to_char(op.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
      FROM jsonb_to_recordset(p_events) AS e(public_id text, owner_id bigint, data jsonb, op bigint)
      JOIN op ON op.id = e.op;
    -- The company's credit, without waiting: into its balance (with its pending credits) if its lock is
    -- free, else as a pending credit for the next holder of the lock to fold.
    IF total > 0 THEN
        PERFORM 1 FROM wallets_wallet WHERE id = p_target FOR NO KEY UPDATE SKIP LOCKED;
        IF FOUND THEN
            WITH folded AS (DELETE FROM wallets_pendingcredit WHERE wallet_id = p_target RETURNING amount)
            UPDATE wallets_wallet SET balance = balance + total + COALESCE((SELECT SUM(amount) FROM folded), 0)
             WHERE id = p_target
            RETURNING wallets_wallet.balance INTO credited;
        ELSE
            -- One pending credit holds at most one operation's maximum amount (pending_credit_amount_max),
            -- and a batch may bring up to a thousand of them: the total in as many pieces as it needs.
            INSERT INTO wallets_pendingcredit (wallet_id, amount)
            SELECT p_target, LEAST(total - piece * 1000000000.00, 1000000000.00)
              FROM generate_series(0, ceil(total / 1000000000.00)::int - 1) AS piece;
        END IF;
    END IF;
    SELECT COALESCE(credited, w.balance + COALESCE((SELECT SUM(p.amount) FROM wallets_pendingcredit p
                                                     WHERE p.wallet_id = w.id), 0))
      INTO credited FROM wallets_wallet w WHERE w.id = p_target;
    -- Money a pending credit would take past the balance's maximum could never be folded: refuse the batch
    -- (the wallet_balance_max constraint's bound; the caller answers it as BalanceOverflow).
    IF credited > 999999999999999999.99 THEN
        RAISE EXCEPTION 'the company''s balance would exceed its maximum' USING ERRCODE = 'numeric_value_out_of_range';
    END IF;
    RETURN QUERY
    SELECT decided, credited,
           COALESCE((SELECT SUM(h.amount - h.captured) FROM wallets_hold h WHERE h.wallet_id = w.id
                        AND h.status = 'pending' AND h.expires_at > statement_timestamp()), 0),
           throttled_items
      FROM wallets_wallet w WHERE w.id = p_target;
END
$$;
"""
DROP = (
    "DROP FUNCTION IF EXISTS wallet_charge_many(bigint, bigint[], bigint[], numeric[], text[], jsonb, integer, interval);"
)


class Migration(migrations.Migration):
    dependencies = [("wallets", "0009_charge_many_function")]

    operations = [migrations.RunSQL(FUNCTION, DROP)]
