"""Delivering events to webhook endpoints, at least once, from ``manage.py worker``.

State lives in the database, so deliveries survive restarts and several workers share the work:

1. **Fan-out.** Events become deliveries (one per subscribed endpoint of the event's owner) in the
   feed's commit order: from the position (xid, id) in ``WebhookFanout``, only events whose
   transaction is older than every transaction still running (``pg_snapshot_xmin``), so an event
   that commits late with a smaller id is never passed over. One worker at a time (an advisory lock;
   the others skip). An event reaches an endpoint created before it (events.webhooks.services).
2. **Claim.** Due pending deliveries are taken with ``FOR UPDATE SKIP LOCKED`` and leased: their
   ``next_attempt_at`` is pushed ``lease`` seconds ahead and ``attempts`` incremented, in a transaction
   that commits before anything is sent. No other worker can take them while the attempt runs: it
   lasts at most ``timeout`` < ``lease``, and never past the lease, counted from before the claim (an
   attempt whose thread started late, on a starved machine, gets what is left of the lease, or is not
   sent at all); a worker killed mid-attempt leaves them due again when the lease runs out, to be sent
   again (at least once; receivers deduplicate by ``webhook-id``).
3. **Attempt** (a thread pool, events.webhooks.client), then **record**: delivered on a 2xx, else due
   again after a growing delay with jitter, until ``window`` seconds after the delivery was made: then
   failed. The record is fenced by the attempt number, so a late result never overwrites a newer one.
   An endpoint that has failed every attempt for ``disable_after`` seconds is disabled (GET /webhooks
   says so) and its pending deliveries fail.

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

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection, transaction

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
    threads: int = 8  # attempts in flight at once, per worker
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

FANOUT = """
WITH batch AS (
    -- The position as a row subquery: an index bound on event_commit_order_idx, so a batch reads only the
    -- events past it (joined from a CTE, the row comparison was a filter over every event from the first).
    SELECT e.id, e.xid, e.owner_id, e.type, e.created_at
      FROM events_event e
     WHERE (e.xid, e.id) > (SELECT event_xid, event_id FROM events_webhookfanout WHERE id = 1)
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
    UPDATE events_webhookfanout f SET event_xid = last.xid, event_id = last.id FROM last WHERE f.id = 1 RETURNING 1
)
SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM inserted), (SELECT count(*) FROM moved)
"""


FANOUT_ROW = "INSERT INTO events_webhookfanout (id, event_xid, event_id) VALUES (1, '0', 0) ON CONFLICT DO NOTHING"


def fan_out(policy: DeliveryPolicy) -> int:
    """Turn the events past the position into deliveries; the number of deliveries made. Does nothing
    while another worker is fanning out."""
    made = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [FANOUT_LOCK])
            if not cursor.fetchone()[0]:
                return made
            # The row the migration made (again if a flush emptied the table: from the start, which
            # delivers nothing twice, as no delivery is older than its endpoint).
            cursor.execute(FANOUT_ROW)
            cursor.execute(FANOUT, {"limit": policy.fanout_batch})
            events, inserted, _ = cursor.fetchone()
        made += inserted
        if events < policy.fanout_batch:
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


CANDIDATES = """
SELECT d.id, d.endpoint_id
  FROM events_webhookdelivery d
 WHERE d.status = 'pending' AND d.next_attempt_at <= now()
 ORDER BY d.next_attempt_at
 LIMIT %(limit)s
   FOR UPDATE SKIP LOCKED
"""

LEASE = """
UPDATE events_webhookdelivery d
   SET attempts = d.attempts + 1, last_attempt_at = now(), next_attempt_at = now() + %(lease)s * interval '1 second'
  FROM events_webhookendpoint w, events_event e
 WHERE d.id = ANY(%(ids)s) AND w.id = d.endpoint_id AND e.id = d.event_id
RETURNING d.id, d.attempts, w.id, w.public_id, w.url, w.secret_encrypted,
          e.public_id, e.type, e.created_at, e.data, d.created_at
"""


def claim(policy: DeliveryPolicy, slots: int, busy: Counter | None = None) -> list[Claim]:
    """Lease up to ``slots`` due deliveries, at most ``per_endpoint`` (counting ``busy``, the attempts
    this worker has in flight by endpoint id) to one endpoint."""
    if slots <= 0:
        return []
    busy = Counter(busy or {})
    # Before the transaction, whose now() starts the lease: the lease ends no earlier than this + lease.
    lease_ends = time.monotonic() + policy.lease
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(CANDIDATES, {"limit": slots * 4})
        chosen = []
        for delivery_id, endpoint_id in cursor.fetchall():
            if len(chosen) < slots and busy[endpoint_id] < policy.per_endpoint:
                busy[endpoint_id] += 1
                chosen.append(delivery_id)
        if not chosen:
            return []
        cursor.execute(LEASE, {"ids": chosen, "lease": policy.lease})
        rows = cursor.fetchall()
    claims = []
    for row in rows:
        (delivery_id, attempt, endpoint_id, endpoint_public_id, url, secret) = row[:6]
        public_id, type_, created_at, data, delivery_created_at = row[6:]
        event = EventRow(public_id, type_, created_at, json.loads(data) if isinstance(data, str) else data)
        claim_ = Claim(delivery_id, attempt, endpoint_id, endpoint_public_id, url, secret, event, delivery_created_at)
        claims.append(replace(claim_, lease_ends=lease_ends))
    return claims


def attempt(claim: Claim, policy: DeliveryPolicy, context=None) -> client.Outcome:
    """Send one claimed delivery (no database access: it runs in the pool's threads), within its lease."""
    time_left = claim.time_left(policy)
    if time_left <= 0:
        return client.Outcome("network_error", error="not sent: the lease ran out before the attempt could start")
    try:
        secret = decrypt_secret(claim.endpoint_public_id, claim.secret_encrypted)
    except UndecryptableSecret:
        return client.Outcome("network_error", error="the signing secret cannot be decrypted (SECRET_KEY changed?)")
    body = json.dumps(event_body(claim.event), separators=(",", ":"), ensure_ascii=False).encode()
    headers = client.signed_headers(secret, claim.event.public_id, body)
    return client.send(claim.url, body, headers, timeout=claim.time_left(policy), context=context)


DELIVERED = """
UPDATE events_webhookdelivery
   SET status = 'delivered', delivered_at = now(), last_status = %(status)s, last_error = ''
 WHERE id = %(id)s AND attempts = %(attempt)s AND status = 'pending'
"""
RETRY = """
UPDATE events_webhookdelivery
   SET status = CASE WHEN now() >= created_at + %(window)s * interval '1 second' THEN 'failed' ELSE 'pending' END,
       next_attempt_at = now() + %(delay)s * interval '1 second', last_status = %(status)s, last_error = %(error)s
 WHERE id = %(id)s AND attempts = %(attempt)s AND status = 'pending'
RETURNING status
"""
ENDPOINT_SUCCEEDED = """
UPDATE events_webhookendpoint SET failing_since = NULL WHERE id = %s AND failing_since IS NOT NULL
"""
ENDPOINT_FAILED = """
UPDATE events_webhookendpoint
   SET failing_since = COALESCE(failing_since, now()),
       disabled_at = CASE WHEN failing_since < now() - %(disable_after)s * interval '1 second'
                          THEN COALESCE(disabled_at, now()) END
 WHERE id = %(id)s AND disabled_at IS NULL
RETURNING disabled_at IS NOT NULL
"""
DISABLED_PENDING = """
UPDATE events_webhookdelivery SET status = 'failed', last_error = 'endpoint disabled: every attempt failed for days'
 WHERE endpoint_id = %s AND status = 'pending'
"""
COUNT = """
INSERT INTO events_webhookattemptcount (outcome, count) VALUES (%s, %s)
ON CONFLICT (outcome) DO UPDATE SET count = events_webhookattemptcount.count + EXCLUDED.count
"""


def record(policy: DeliveryPolicy, results: list[tuple[Claim, client.Outcome, float, float]]) -> None:
    """Write what the attempts came to (each: claim, outcome, duration, Unix time it started), in one
    transaction (all or nothing: retried if it fails)."""
    if not results:
        return
    outcomes = Counter()
    logs = []
    with transaction.atomic(), connection.cursor() as cursor:
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
            if outcome.delivered:
                cursor.execute(
                    DELIVERED, {"id": claim_.delivery_id, "attempt": claim_.attempt, "status": outcome.status}
                )
                cursor.execute(ENDPOINT_SUCCEEDED, [claim_.endpoint_id])
            else:
                delay = policy.retry_delay(claim_.attempt)
                cursor.execute(
                    RETRY,
                    {
                        "id": claim_.delivery_id,
                        "attempt": claim_.attempt,
                        "status": outcome.status,
                        "error": outcome.error[:2000],
                        "delay": delay,
                        "window": policy.window,
                    },
                )
                row = cursor.fetchone()
                line |= {"error": outcome.error[:500], "next_attempt_in_s": round(delay, 1)}
                if row and row[0] == "failed":
                    line["gave_up"] = True
                cursor.execute(ENDPOINT_FAILED, {"id": claim_.endpoint_id, "disable_after": policy.disable_after})
                disabled = cursor.fetchone()
                if disabled and disabled[0]:
                    cursor.execute(DISABLED_PENDING, [claim_.endpoint_id])
                    line["endpoint_disabled"] = True
            logs.append(line)
        for name, count in sorted(outcomes.items()):
            cursor.execute(COUNT, [name, count])
    for line in logs:
        level = logging.INFO if line["outcome"] == "delivered" else logging.WARNING
        logger.log(level, "webhook attempt", extra=line)


# --- The loop ----------------------------------------------------------------------------------------


class Dispatcher:
    """Fan out, claim, send (in a pool of ``policy.threads``), record; until ``stop`` is set."""

    def __init__(self, stop: threading.Event, policy: DeliveryPolicy | None = None, *, context=None):
        self.stop = stop
        self.policy = policy or policy_from_settings()
        self.context = context
        self.wake = threading.Event()
        self.done: queue.SimpleQueue = queue.SimpleQueue()
        self.in_flight: dict[int, Claim] = {}
        self.unrecorded: list[tuple[Claim, client.Outcome, float, float]] = []

    def _send(self, claim_: Claim) -> None:
        started_at, started = time.time(), time.monotonic()
        try:
            outcome = attempt(claim_, self.policy, self.context)
        except Exception as error:  # a bug: never lose the claim's result
            logger.exception("webhook attempt crashed", extra={"event": claim_.event.public_id})
            outcome = client.Outcome("network_error", error=f"internal error: {error.__class__.__name__}")
        self.done.put((claim_, outcome, time.monotonic() - started, started_at))
        self.wake.set()

    def _collect(self) -> None:
        while True:
            try:
                result = self.done.get_nowait()
            except queue.Empty:
                return
            self.in_flight.pop(result[0].delivery_id, None)
            self.unrecorded.append(result)

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
            self.in_flight[claim_.delivery_id] = claim_
            pool.submit(self._send, claim_)
        return len(claims)

    def run(self) -> None:
        logger.info("webhook delivery started", extra={"threads": self.policy.threads})
        failures = 0
        with ThreadPoolExecutor(self.policy.threads, thread_name_prefix="webhook") as pool:
            while not self.stop.is_set():
                try:
                    started = self.step(pool)
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
                slots_left = len(self.in_flight) < self.policy.threads
                if not (started and slots_left):
                    self.wake.wait(self.policy.poll)
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
        connection.close()
        logger.info("webhook delivery stopped")


def start(stop: threading.Event, policy: DeliveryPolicy | None = None) -> threading.Thread:
    dispatcher = Dispatcher(stop, policy)
    thread = threading.Thread(target=dispatcher.run, name="webhook-delivery", daemon=True)
    thread.start()
    return thread
