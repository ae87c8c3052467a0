"""wallet_history_side(): one side of a wallet's history page, always read in the index's order.

Written as a query, the page let the planner choose by its statistics: on a table just filled it sorted
a long history whole, after ANALYZE it scanned the whole ledger, and with a cursor it took a bitmap scan
and sorted every older operation of the wallet. Inside this function the planner may not sort, scan the
table or use a bitmap (the function's SET clauses), and plans each call with the call's own values
(force_custom_plan: a condition on a NULL argument folds away, so the cursor starts the index range).
So a side costs one index range of ``limit`` rows whatever the statistics say. Pinned by
wallets/tests/test_history_plan.py.
"""

from django.db import migrations

FUNCTION = """
CREATE FUNCTION wallet_history_side(
    p_wallet bigint, p_as_source boolean, p_since timestamptz, p_until timestamptz,
    p_after_at timestamptz, p_after_id bigint, p_snapshot pg_snapshot, p_limit integer
) RETURNS TABLE (
    id bigint, kind varchar, amount numeric, summary varchar, success boolean, created_at timestamptz,
    source_id bigint, target_id bigint, hold_id bigint, refund_of_id bigint
) LANGUAGE plpgsql STABLE
  SET enable_sort = off SET enable_bitmapscan = off SET enable_seqscan = off
  SET plan_cache_mode = force_custom_plan
AS $$
BEGIN
    -- One statement for both sides, the column named by format(); EXECUTE ... USING plans it with this
    -- call's values, so a condition on a NULL argument folds away and the cursor starts the index range.
    RETURN QUERY EXECUTE format(
        'SELECT o.id, o.kind, o.amount, o.summary, o.success, o.created_at, o.source_id, o.target_id, o.hold_id,
                o.refund_of_id
           FROM wallets_operation o
          WHERE o.%I = $1
            AND ($2 IS NULL OR o.created_at >= $2)
            AND ($3 IS NULL OR o.created_at < $3)
            AND ($4 IS NULL OR (o.created_at, o.id) < ($4, $5))
            AND ($6 IS NULL OR pg_visible_in_snapshot(o.xid, $6) OR o.xid = pg_current_xact_id_if_assigned())
          ORDER BY o.created_at DESC, o.id DESC
          LIMIT $7',
        CASE WHEN p_as_source THEN 'source_id' ELSE 'target_id' END)
    USING p_wallet, p_since, p_until, p_after_at, p_after_id, p_snapshot, p_limit;
END
$$;
"""
DROP = "DROP FUNCTION IF EXISTS wallet_history_side(bigint, boolean, timestamptz, timestamptz, timestamptz, bigint, pg_snapshot, integer);"


class Migration(migrations.Migration):
    dependencies = [("wallets", "0006_operation_xid_in_the_model")]

    operations = [migrations.RunSQL(FUNCTION, DROP)]
