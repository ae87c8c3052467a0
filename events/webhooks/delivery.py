"""Delivering events to webhook endpoints, at least once, from ``manage.py worker``.

State lives in the database, so deliveries survive restarts and several workers share the work:

1. **Fan-out.** Events become deliveries (one per subscribed endpoint of the event's owner) in the
   feed's commit order: from the position (xid, id) in ``WebhookFanout``, only events whose
   transaction is older than every transaction still running (``pg_snapshot_xmin``), so an event
   that commits late with a smaller id is never passed over. One worker at a time (an advisory lock;
   the others skip), taken inside the fan-out's one statement: a worker whose statement began before the
   previous holder committed reads the old position and does its batch again, which makes nothing twice
   (``ON CONFLICT DO NOTHING`` sees committed rows) and never moves the position back. An event reaches
   an endpoint created before it (events.webhooks.services).
2. **Claim.** Due pending deliveries are taken with ``FOR UPDATE SKIP LOCKED`` and leased: their
   ``next_attempt_at`` is pushed ``lease`` seconds ahead and ``attempts`` incremented, in a transaction
   that commits before anything is sent. No other worker can take them while the attempt runs: it
   lasts at most ``timeout`` < ``lease``, and never past the lease, counted from before the claim (an
   attempt whose thread started late, on a starved machine, gets what is left of the lease, or is not
   sent at all); a worker killed mid-attempt leaves them due again when the lease runs out, to be sent
   again (at least once; receivers deduplicate by ``webhook-id``). At most ``per_endpoint`` attempts of
   a worker go to one endpoint at once.
3. **Attempt** (a thread pool, events.webhooks.client), then **record**: delivered on a 2xx, else due
   again after a growing delay with jitter, until ``window`` seconds after the delivery was made: then
   failed. The record is fenced by the attempt number, so a late result never overwrites a newer one.
   An endpoint that has failed every attempt for ``disable_after`` seconds is disabled (GET /webhooks
   says so) and its pending deliveries fail.

Each step is one statement whatever the number of deliveries it handles (its own transaction, in
autocommit), and the worker runs them in rounds that each handle many attempts (Dispatcher): a busy
worker sends about one statement per five deliveries (docs/PERFORMANCE.md, *Webhook delivery*).

Each attempt is logged as one JSON line (logger ``events.webhooks``) and counted by outcome in the
database (events.webhooks.metrics exports the counts, the queue depth and the oldest undelivered event).
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connection

from events.apis import event_body
from events.selectors import EventRow
from events.webhooks import client
from events.webhooks.secrets import UndecryptableSecret, decrypt_secret

logger = logging.getLogger("events.webhooks")

FANOUT_LOCK = 0x77656268  # "webh": the advisory lock one fan-out at a time holds


@dataclass(frozen=True)
class DeliveryPolicy:
    """How deliveries are made and retried; ``settings.WALLET_SERVICE_WEBHOOK_DELIVERY`` (a dict) may
    override any field (the tests shorten the delays)."""

    retry_base: float = 5.0  # seconds after the first failed attempt ...
    retry_factor: float = 2.0  # ... multiplied by this after each further one ...
    retry_max: float = 3600.0  # ... up to this
    jitter: float = 0.2  # each delay is multiplied by a random factor in [1 - jitter, 1 + jitter]
    window: float = 24 * 3600.0  # retried until this long after the delivery was made, then failed
    disable_after: float = 5 * 24 * 3600.0  # an endpoint failing everything this long is disabled
    timeout: float = client.TIMEOUT_SECONDS
    lease: float = 60.0  # must exceed timeout
    poll: float = 0.5  # seconds between looks for new events when idle
    gather: float = 0.025  # between rounds while attempts are in flight (less when many have ended)
    threads: int = 32  # attempts in flight at once, per worker
    per_endpoint: int = 4  # of which at most this many to one endpoint
    fanout_batch: int = 1000

    def retry_delay(self, attempts: int) -> float:
        delay = min(self.retry_max, self.retry_base * self.retry_factor ** max(0, attempts - 1))
        return delay * random.uniform(1 - self.jitter, 1 + self.jitter)


def policy_from_settings() -> DeliveryPolicy:
    policy = replace(DeliveryPolicy(), **getattr(settings, "WALLET_SERVICE_WEBHOOK_DELIVERY", {}))
    if policy.lease <= policy.timeout:
        raise ValueError("the delivery lease must be longer than an attempt's timeout")
    return policy


# --- Fan-out ---------------------------------------------------------------------------------------

# One statement (one round trip, its own transaction): the advisory lock, the batch of events past the
# position in commit order, their deliveries, the position moved to the batch's last event. The position is a
# row subquery, so it and the horizon bound one range of event_commit_order_idx (joined from a CTE, the row
# comparison was a filter over every event from the first); ('0', 0) if a flush emptied the table: from the
# start, which delivers nothing twice, as no delivery is older than its endpoint. Every event past the
# position is read once, whether or not its owner has an endpoint: the join finds the few that do by
# webhook_owner_idx. The position never moves back (another fan-out may have moved it since this
# statement's snapshot was taken).
FANOUT = """
WITH lock AS (SELECT pg_try_advisory_xact_lock(%(lock)s) AS got),
batch AS (
    SELECT e.id, e.xid, e.owner_id, e.type, e.created_at
      FROM events_event e
     WHERE (SELECT got FROM lock)
       AND (e.xid, e.id) > (SELECT event_xid, event_id FROM events_webhookfanout WHERE id = 1
                            UNION ALL SELECT '0', 0 ORDER BY 1 DESC, 2 DESC LIMIT 1)
       AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
     ORDER BY e.xid, e.id
     LIMIT %(limit)s
),
inserted AS (
    INSERT INTO events_webhookdelivery
           (endpoint_id, event_id, status, attempts, next_attempt_at, last_error, created_at)
    SELECT w.id, b.id, 'pending', 0, now(), '', now()
      FROM batch b
      JOIN events_webhookendpoint w
        ON w.owner_id = b.owner_id AND b.type = ANY(w.event_types) AND b.created_at > w.created_at
       AND w.disabled_at IS NULL
    ON CONFLICT DO NOTHING
    RETURNING 1
),
last AS (SELECT xid, id FROM batch ORDER BY xid DESC, id DESC LIMIT 1),
moved AS (
    INSERT INTO events_webhookfanout AS f (id, event_xid, event_id) SELECT 1, xid, id FROM last
    ON CONFLICT (id) DO UPDATE SET event_xid = EXCLUDED.event_xid, event_id = EXCLUDED.event_id
     WHERE (f.event_xid, f.event_id) < (EXCLUDED.event_xid, EXCLUDED.event_id)
    RETURNING 1
)
SELECT (SELECT got FROM lock), (SELECT count(*) FROM batch), (SELECT count(*) FROM inserted),
       (SELECT count(*) FROM moved)
"""


def fan_out(policy: DeliveryPolicy) -> int:
    """Turn the events past the position into deliveries; the number of deliveries made. Does nothing
    while another worker is fanning out."""
    made = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(FANOUT, {"lock": FANOUT_LOCK, "limit": policy.fanout_batch})
            got, events, inserted, _ = cursor.fetchone()
        made += inserted
        if not got or events < policy.fanout_batch:
            return made


# --- Claim and record ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    attempt: int  # this attempt's number (1 for the first)
    endpoint_id: int
    endpoint_public_id: str
    url: str
    secret_encrypted: str
    event: EventRow
    delivery_created_at: object
    lease_ends: float = float("inf")  # time.monotonic() by which the attempt must be over

    def time_left(self, policy: DeliveryPolicy) -> float:
        """The attempt's time: its timeout, cut short by the lease (never past it: another worker may
        take the delivery then)."""
        return min(policy.timeout, self.lease_ends - time.monotonic())


# One statement (one round trip, its own transaction, so the lease is committed before anything is sent):
# due deliveries locked with SKIP LOCKED in the order they fell due, at most ``per_endpoint`` per endpoint
# counting the attempts this worker already has in flight there (``busy``), the first ``slots`` of those
# leased, returned with what their attempts need.
CLAIM = """
WITH candidates AS (
    SELECT d.id, d.endpoint_id, d.next_attempt_at
      FROM events_webhookdelivery d
     WHERE d.status = 'pending' AND d.next_attempt_at <= now()
     ORDER BY d.next_attempt_at
     LIMIT %(scan)s
       FOR UPDATE SKIP LOCKED
),
ranked AS (
    SELECT c.id, c.next_attempt_at,
           row_number() OVER (PARTITION BY c.endpoint_id ORDER BY c.next_attempt_at, c.id) + COALESCE(b.n, 0) AS nth
      FROM candidates c
      LEFT JOIN unnest(%(busy_endpoints)s::bigint[], %(busy_counts)s::int[]) b (endpoint_id, n)
        ON b.endpoint_id = c.endpoint_id
),
chosen AS (
    SELECT id FROM ranked WHERE nth <= %(per_endpoint)s ORDER BY next_attempt_at, id LIMIT %(slots)s
)
UPDATE events_webhookdelivery d
   SET attempts = d.attempts + 1, last_attempt_at = now(), next_attempt_at = now() + %(lease)s * interval '1 second'
  FROM chosen, events_webhookendpoint w, events_event e
 WHERE d.id = chosen.id AND w.id = d.endpoint_id AND e.id = d.event_id
RETURNING d.id, d.attempts, w.id, w.public_id, w.url, w.secret_encrypted,
          e.public_id, e.type, e.created_at, e.data, d.created_at, w.disabled_at IS NOT NULL
"""


# An endpoint just disabled: its pending deliveries fail.
DISABLED_PENDING = """
UPDATE events_webhookdelivery SET status = 'failed', last_error = %(error)s
 WHERE endpoint_id = ANY(%(endpoints)s) AND status = 'pending'
"""
ABANDONED = """
UPDATE events_webhookdelivery SET status = 'failed', last_error = %(error)s
 WHERE id = ANY(%(ids)s) AND status = 'pending'
"""
DISABLED_ERROR = "endpoint disabled: every attempt failed for days"


def claim(policy: DeliveryPolicy, slots: int, busy: Counter | None = None) -> list[Claim]:
    """Lease up to ``slots`` due deliveries, at most ``per_endpoint`` (counting ``busy``, the attempts
    this worker has in flight by endpoint id) to one endpoint."""
    if slots <= 0:
        return []
    busy = {endpoint_id: count for endpoint_id, count in (busy or {}).items() if count > 0}
    # Before the statement, whose now() starts the lease: the lease ends no earlier than this + lease.
    lease_ends = time.monotonic() + policy.lease
    with connection.cursor() as cursor:
        cursor.execute(
            CLAIM,
            {
                "scan": slots * 4,
                "slots": slots,
                "per_endpoint": policy.per_endpoint,
                "busy_endpoints": list(busy),
                "busy_counts": list(busy.values()),
                "lease": policy.lease,
            },
        )
        rows = cursor.fetchall()
        # Left pending by a worker stopped between recording an endpoint's disabling and failing its
        # deliveries (record()): failed now, not sent.
        disabled = [row[0] for row in rows if row[11]]
        if disabled:
            try:  # the others are leased: they are sent whatever becomes of these (failed at a later claim)
                cursor.execute(ABANDONED, {"ids": disabled, "error": DISABLED_ERROR})
            except DatabaseError as error:
                logger.warning("disabled endpoints' deliveries not failed yet", extra={"error": str(error)[:300]})
    claims = []
    for row in rows:
        if row[11]:
            continue
        (delivery_id, attempt, endpoint_id, endpoint_public_id, url, secret) = row[:6]
        public_id, type_, created_at, data, delivery_created_at = row[6:11]
        event = EventRow(public_id, type_, created_at, json.loads(data) if isinstance(data, str) else data)
        claims.append(
            Claim(
                delivery_id,
                attempt,
                endpoint_id,
                endpoint_public_id,
                url,
                secret,
                event,
                delivery_created_at,
                lease_ends=lease_ends,
            )
        )
    return claims


@lru_cache(maxsize=1024)
def _signing_secret(keys: tuple[str, ...], endpoint_public_id: str, secret_encrypted: str) -> str:
    """An endpoint's secret, decrypted once per (keys, ciphertext) rather than at every attempt."""
    return decrypt_secret(endpoint_public_id, secret_encrypted)


def attempt(claim: Claim, policy: DeliveryPolicy, context=None) -> client.Outcome:
    """Send one claimed delivery (no database access: it runs in the pool's threads), within its lease."""
    time_left = claim.time_left(policy)
    if time_left <= 0:
        return client.Outcome("network_error", error="not sent: the lease ran out before the attempt could start")
    try:
        keys = (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", []))
        secret = _signing_secret(keys, claim.endpoint_public_id, claim.secret_encrypted)
    except UndecryptableSecret:
        return client.Outcome("network_error", error="the signing secret cannot be decrypted (SECRET_KEY changed?)")
    body = json.dumps(event_body(claim.event), separators=(",", ":"), ensure_ascii=False).encode()
    headers = client.signed_headers(secret, claim.event.public_id, body)
    return client.send(claim.url, body, headers, timeout=claim.time_left(policy), context=context)


# What a round's attempts came to, in one statement (one round trip, one transaction), whatever their
# number: each delivery's outcome, fenced by its attempt number (a late result never overwrites a newer
# one); each endpoint's failing_since and disabled_at from its results in the order the attempts ended;
# the attempts counted by outcome. Rows are taken in one order (deliveries, endpoints, counts; each by id
# or name) in every worker. Returns the deliveries that gave up and the endpoints disabled just now.
RECORD = """
WITH results AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(attempts)s::int[], %(delivered)s::boolean[], %(statuses)s::int[],
                         %(errors)s::text[], %(delays)s::float8[]) AS r (id, attempt, delivered, status, error, delay)
),
endpoints AS (
    SELECT * FROM unnest(%(endpoints)s::bigint[], %(failed_first)s::boolean[], %(failed_last)s::boolean[],
                         %(succeeded)s::boolean[]) AS e (id, failed_first, failed_last, succeeded)
),
recorded AS (
    UPDATE events_webhookdelivery d
       SET status = CASE WHEN r.delivered THEN 'delivered'
                         WHEN now() >= d.created_at + %(window)s * interval '1 second' THEN 'failed'
                         ELSE 'pending' END,
           delivered_at = CASE WHEN r.delivered THEN now() END,
           next_attempt_at = CASE WHEN r.delivered THEN d.next_attempt_at
                                  ELSE now() + r.delay * interval '1 second' END,
           last_status = r.status, last_error = r.error
      FROM results r
     WHERE d.id = r.id AND d.attempts = r.attempt AND d.status = 'pending'
    RETURNING d.id, d.status
),
judged AS (
    -- Failing since the first failure after a success; cleared by a success. A disabled endpoint's
    -- failures change nothing. Disabled when its first result here is a failure and it has been failing
    -- for disable_after.
    UPDATE events_webhookendpoint w
       SET failing_since = CASE WHEN NOT e.failed_last THEN NULL
                                WHEN w.disabled_at IS NOT NULL THEN CASE WHEN e.succeeded THEN NULL
                                                                         ELSE w.failing_since END
                                WHEN e.succeeded THEN now()
                                ELSE COALESCE(w.failing_since, now()) END,
           disabled_at = CASE WHEN w.disabled_at IS NOT NULL THEN w.disabled_at
                              WHEN e.failed_first AND NOT e.succeeded
                               AND w.failing_since < now() - %(disable_after)s * interval '1 second' THEN now() END
      FROM endpoints e
     WHERE w.id = e.id AND (w.failing_since IS NOT NULL OR e.failed_last)
    RETURNING w.id, w.disabled_at = now() AS disabled
),
counted AS (
    INSERT INTO events_webhookattemptcount (outcome, count)
    SELECT * FROM unnest(%(outcomes)s::text[], %(counts)s::bigint[])
    ON CONFLICT (outcome) DO UPDATE SET count = events_webhookattemptcount.count + EXCLUDED.count
)
SELECT 'gave_up', id FROM recorded WHERE status = 'failed'
UNION ALL
SELECT 'disabled', id FROM judged WHERE disabled
"""


def record(policy: DeliveryPolicy, results: list[tuple[Claim, client.Outcome, float, float]]) -> None:
    """Write what the attempts came to (each: claim, outcome, duration, Unix time it started, in the
    order they ended), in one statement (all or nothing: retried if it fails)."""
    if not results:
        return
    outcomes = Counter()
    logs = []
    rows = []
    endpoints: dict[int, list[bool]] = {}  # endpoint id -> [first failed, last failed, any succeeded]
    for claim_, outcome, duration, started_at in results:
        outcomes[outcome.outcome] += 1
        line = {
            "event": claim_.event.public_id,
            "event_type": claim_.event.type,
            "endpoint": claim_.endpoint_public_id,
            "delivery": claim_.delivery_id,
            "attempt": claim_.attempt,
            "outcome": outcome.outcome,
            "status": outcome.status,
            "started_at": round(started_at, 3),
            "duration_ms": round(duration * 1000),
        }
        delay = 0.0
        if not outcome.delivered:
            delay = policy.retry_delay(claim_.attempt)
            line |= {"error": outcome.error[:500], "next_attempt_in_s": round(delay, 1)}
        failed = not outcome.delivered
        state = endpoints.setdefault(claim_.endpoint_id, [failed, failed, False])
        state[1] = failed
        state[2] = state[2] or not failed
        error = outcome.error[:2000].replace("\x00", "\ufffd")  # PostgreSQL's text takes no NUL (a receiver's bytes)
        rows.append((claim_.delivery_id, claim_.attempt, outcome.delivered, outcome.status, error, delay))
        logs.append(line)
    rows.sort()
    by_endpoint = sorted(endpoints.items())
    counts = sorted(outcomes.items())
    with connection.cursor() as cursor:
        cursor.execute(
            RECORD,
            {
                "ids": [row[0] for row in rows],
                "attempts": [row[1] for row in rows],
                "delivered": [row[2] for row in rows],
                "statuses": [row[3] for row in rows],
                "errors": [row[4] for row in rows],
                "delays": [row[5] for row in rows],
                "endpoints": [endpoint_id for endpoint_id, _ in by_endpoint],
                "failed_first": [state[0] for _, state in by_endpoint],
                "failed_last": [state[1] for _, state in by_endpoint],
                "succeeded": [state[2] for _, state in by_endpoint],
                "outcomes": [name for name, _ in counts],
                "counts": [count for _, count in counts],
                "window": policy.window,
                "disable_after": policy.disable_after,
            },
        )
        returned = cursor.fetchall()
        gave_up = {row_id for kind, row_id in returned if kind == "gave_up"}
        disabled = sorted(row_id for kind, row_id in returned if kind == "disabled")
        if disabled:
            # A second statement: claim() fails any delivery it leases for a disabled endpoint, should the
            # worker stop between the two, or this one fail (the results are recorded: not to be recorded again).
            try:
                cursor.execute(DISABLED_PENDING, {"endpoints": disabled, "error": DISABLED_ERROR})
            except DatabaseError as error:
                logger.warning("disabled endpoints' deliveries left to the claim", extra={"error": str(error)[:300]})
    marked = set()
    for (claim_, outcome, _, _), line in zip(results, logs, strict=True):
        if claim_.delivery_id in gave_up:
            line["gave_up"] = True
        if claim_.endpoint_id in disabled and not outcome.delivered and claim_.endpoint_id not in marked:
            line["endpoint_disabled"] = True
            marked.add(claim_.endpoint_id)
    for line in logs:
        level = logging.INFO if line["outcome"] == "delivered" else logging.WARNING
        logger.log(level, "webhook attempt", extra=line)


# --- The loop ----------------------------------------------------------------------------------------


class Dispatcher:
    """Fan out, claim, send (in a pool of ``policy.threads``), record; until ``stop`` is set.

    A round (record, fan out, claim: three statements) runs when attempts on half the pool's threads
    have ended since the last, else ``policy.gather`` seconds after it while attempts are in flight, or
    ``policy.poll`` seconds when none is: each round records and claims for many attempts at once, so
    a busy worker's statements per delivery stay few, whether it is saturated or keeping up with a
    steady stream (where a round per ended attempt would be one round per delivery).
    """

    def __init__(self, stop: threading.Event, policy: DeliveryPolicy | None = None, *, context=None):
        self.stop = stop
        self.policy = policy or policy_from_settings()
        self.context = context
        self.wake = threading.Event()
        self.done: queue.SimpleQueue = queue.SimpleQueue()
        self.in_flight: dict[tuple[int, int], Claim] = {}  # by (delivery, attempt): a late attempt's result is its own
        self.unrecorded: list[tuple[Claim, client.Outcome, float, float]] = []
        self.ended = 0  # attempts ended and not yet collected (the pool's threads count them up)
        self.wake_after = 1  # ... and the count at which they wake the loop before ``gather``
        self.ended_lock = threading.Lock()

    def _started(self, claim_: Claim) -> None:
        self.in_flight[(claim_.delivery_id, claim_.attempt)] = claim_

    def _send(self, claim_: Claim) -> None:
        started_at, started = time.time(), time.monotonic()
        try:
            outcome = attempt(claim_, self.policy, self.context)
        except Exception as error:  # a bug: never lose the claim's result
            logger.exception("webhook attempt crashed", extra={"event": claim_.event.public_id})
            outcome = client.Outcome("network_error", error=f"internal error: {error.__class__.__name__}")
        self.done.put((claim_, outcome, time.monotonic() - started, started_at))
        with self.ended_lock:
            self.ended += 1
            if self.ended >= self.wake_after:
                self.wake.set()

    def _collect(self) -> None:
        collected = 0
        while True:
            try:
                result = self.done.get_nowait()
            except queue.Empty:
                break
            collected += 1
            self.in_flight.pop((result[0].delivery_id, result[0].attempt), None)
            self.unrecorded.append(result)
        with self.ended_lock:
            self.ended -= collected

    def step(self, pool: ThreadPoolExecutor) -> int:
        """One round; the number of attempts started."""
        close_old_connections()
        self._collect()
        if self.unrecorded:
            record(self.policy, self.unrecorded)
            self.unrecorded = []
        fan_out(self.policy)
        busy = Counter(claim_.endpoint_id for claim_ in self.in_flight.values())
        claims = claim(self.policy, self.policy.threads - len(self.in_flight), busy)
        for claim_ in claims:
            self._started(claim_)
            pool.submit(self._send, claim_)
        with self.ended_lock:
            self.wake_after = max(1, self.policy.threads // 2)
            if self.ended >= self.wake_after:
                self.wake.set()
        return len(claims)

    def run(self) -> None:
        logger.info("webhook delivery started", extra={"threads": self.policy.threads})
        failures = 0
        with ThreadPoolExecutor(self.policy.threads, thread_name_prefix="webhook") as pool:
            while not self.stop.is_set():
                try:
                    self.step(pool)
                    failures = 0
                except (OperationalError, InterfaceError) as error:
                    failures += 1
                    # The database is down or restarting: drop the connection, try again soon.
                    logger.warning("webhook delivery cannot reach the database", extra={"error": str(error)[:300]})
                    connection.close()
                    self.stop.wait(min(5.0, 0.5 * failures))
                    continue
                except Exception:
                    failures += 1
                    logger.exception("webhook delivery round failed")
                    connection.close()
                    self.stop.wait(min(5.0, 0.5 * failures))
                    continue
                self.wake.wait(min(self.policy.gather, self.policy.poll) if self.in_flight else self.policy.poll)
                self.wake.clear()
                if self.in_flight and not self.ended and not self.stop.is_set():
                    # Nothing has ended (a slow receiver holds its attempts): no round for nothing; new events
                    # are looked for at the idle pace, and an attempt ending wakes the worker as before.
                    self.wake.wait(max(0.0, self.policy.poll - self.policy.gather))
                    self.wake.clear()
            # Stopping: let the attempts in flight end (each within its timeout) and record them.
            deadline = time.monotonic() + self.policy.timeout + 1
            while self.in_flight and time.monotonic() < deadline:
                self.wake.wait(0.1)
                self.wake.clear()
                self._collect()
        self._collect()
        try:
            record(self.policy, self.unrecorded)
        except Exception:
            logger.warning("webhook results not recorded at stop: those deliveries will be sent again")
        client.close_idle_connections()
        connection.close()
        logger.info("webhook delivery stopped")


def start(stop: threading.Event, policy: DeliveryPolicy | None = None) -> threading.Thread:
    dispatcher = Dispatcher(stop, policy)
    thread = threading.Thread(target=dispatcher.run, name="webhook-delivery", daemon=True)
    thread.start()
    return thread
