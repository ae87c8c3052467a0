"""Which database serves a read: the primary, or one of the streaming replicas of
WALLET_SERVICE_READ_REPLICA_URLS (docs/SCALING.md, "Read replicas").

A read may go to a replica only when that cannot change its answer:

- only in a safe-method request (GET, HEAD, OPTIONS) authenticated by the API's token authentication,
  which marks the request's user (``READ_LSN``); any other caller of a selector (a money-moving
  request, a service, the admin, a job) gets the primary, and so does anything inside a transaction;
- only a replica that has replayed the user's last write (``WritePosition``, which the authentication
  query reads from the primary at no extra cost), so a caller always sees its own completed writes;
- only a replica less than ``MAX_LAG`` seconds behind: it must have replayed everything the primary
  had written that long ago (the primary's position is sampled by every authentication, the replica's
  checked at most every ``CHECK_INTERVAL`` seconds per process);
- a replica that fails (down, unreachable, promoted) is skipped for ``DOWN_BACKOFF`` seconds, and a
  read that fails on a replica is run again on the primary: the caller never sees the error.

Nothing here applies without replicas: the authentication query and every read stay as they were.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

PRIMARY = DEFAULT_DB_ALIAS
# The attribute the authentication sets on the request's user: the WAL position (an int) a replica
# must have replayed to serve this user's reads. Absent: the primary only.
READ_LSN = "_wallet_replica_read_lsn"
MAX_LAG = 1.0
CHECK_INTERVAL = 0.25
DOWN_BACKOFF = 5.0
# A history walk's snapshot carries the WAL position it was taken at, so that its later pages are read
# only where everything it saw has been replayed ("<snapshot>@<lsn>"; the snapshot alone before this).
SNAPSHOT_SQL = (
    "pg_current_snapshot()::text || COALESCE('@' || (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
    "ELSE pg_current_wal_insert_lsn() END)::text, '')"
)
RECORD_WRITE_SQL = (
    "INSERT INTO wallet_service_writeposition AS p (user_id, lsn) VALUES (%s, pg_current_wal_insert_lsn()) "
    "ON CONFLICT (user_id) DO UPDATE SET lsn = GREATEST(p.lsn, EXCLUDED.lsn)"
)
REPLICA_STATE_SQL = "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() - '0/0'::pg_lsn"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

logger = logging.getLogger(__name__)


def enabled() -> bool:
    return bool(settings.READ_REPLICAS)


def parse_lsn(text: str) -> int:
    """``'16/B374D848'`` as a number."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def split_snapshot(token: str) -> tuple[str, int | None]:
    """A history cursor's snapshot and the WAL position it was taken at (None for a cursor from before)."""
    snapshot, _, lsn = token.partition("@")
    try:
        return snapshot, parse_lsn(lsn) if lsn else None
    except ValueError:
        return snapshot, None


@dataclass
class _Replica:
    checked_at: float = float("-inf")
    replay_lsn: int = -1
    # What the replica must have replayed to be less than MAX_LAG behind until the next check.
    needed_lsn: int | None = None
    down_until: float = float("-inf")


_lock = threading.Lock()
_replicas: dict[str, _Replica] = {}
_primary_samples: deque[tuple[float, int]] = deque()


def note_primary_lsn(lsn: int) -> None:
    """A sample of the primary's current WAL position (from the authentication query)."""
    now = time.monotonic()
    with _lock:
        _primary_samples.append((now, lsn))
        while _primary_samples and _primary_samples[0][0] < now - MAX_LAG:
            _primary_samples.popleft()


def _needed_lsn(now: float) -> int | None:
    """The oldest primary position sampled after ``now - (MAX_LAG - CHECK_INTERVAL)``: a replica that has
    replayed it is, for the next CHECK_INTERVAL, less than MAX_LAG behind (positions only grow)."""
    with _lock:
        for sampled_at, lsn in _primary_samples:
            if sampled_at >= now - (MAX_LAG - CHECK_INTERVAL):
                return lsn
    return None


def _mark_down(alias: str) -> None:
    with _lock:
        state = _replicas.setdefault(alias, _Replica())
        state.down_until = time.monotonic() + DOWN_BACKOFF
        state.checked_at = float("-inf")
    with contextlib.suppress(DatabaseError):
        connections[alias].close()


def _check(alias: str, now: float) -> _Replica:
    state = _replicas.setdefault(alias, _Replica())
    if now < state.down_until or now - state.checked_at < CHECK_INTERVAL:
        return state
    needed = _needed_lsn(now)  # taken before the replica's position: never newer than what it is compared to
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute(REPLICA_STATE_SQL)
            in_recovery, replay_lsn = cursor.fetchone()
    except DatabaseError as error:
        logger.warning("read replica %s is unavailable, skipped for %s s: %s", alias, DOWN_BACKOFF, error)
        _mark_down(alias)
        return state
    if not in_recovery or replay_lsn is None:
        # Promoted (or not a standby at all): its data may have diverged from the primary's.
        logger.warning("read replica %s is not a standby in recovery, skipped", alias)
        _mark_down(alias)
        return state
    state.checked_at, state.replay_lsn, state.needed_lsn = now, int(replay_lsn), needed
    return state


def read_connection(user, *, min_lsn: int | None = None, primary_only: bool = False) -> str:
    """The alias of the database to read ``user``'s data from, for this request (module docstring)."""
    read_lsn = getattr(user, READ_LSN, None)
    if read_lsn is None or primary_only or not enabled() or connections[PRIMARY].in_atomic_block:
        return PRIMARY
    needed_by_caller = max(read_lsn, min_lsn or 0)
    now = time.monotonic()
    fresh = []
    for alias in settings.READ_REPLICAS:
        state = _check(alias, now)
        if now < state.down_until or state.needed_lsn is None:
            continue
        if state.replay_lsn >= max(needed_by_caller, state.needed_lsn):
            fresh.append(alias)
    return random.choice(fresh) if fresh else PRIMARY


def replica_read(
    requirement: Callable[[dict], tuple[int | None, bool]] | None = None, *, retry_on: tuple[type, ...] = ()
):
    """Run a selector with ``using=`` the database ``read_connection`` picks for its ``owner``/``merchant``.

    ``requirement(kwargs)`` may ask for a replica that has replayed a position, or for the primary
    (``(min_lsn, primary_only)``). A database error on a replica, or one of ``retry_on`` (an answer that
    a replica behind another one could give, like "unknown event"), runs the selector again on the primary.
    """

    def decorate(selector):
        @functools.wraps(selector)
        def wrapper(*args, **kwargs):
            if "using" in kwargs:
                return selector(*args, **kwargs)
            user = kwargs.get("owner", kwargs.get("merchant"))
            min_lsn, primary_only = requirement(kwargs) if requirement else (None, False)
            alias = read_connection(user, min_lsn=min_lsn, primary_only=primary_only)
            if alias == PRIMARY:
                return selector(*args, using=PRIMARY, **kwargs)
            try:
                return selector(*args, using=alias, **kwargs)
            except DatabaseError as error:
                logger.warning("read on replica %s failed, read again on the primary: %s", alias, error)
                _mark_down(alias)
            except retry_on:
                pass
            return selector(*args, using=PRIMARY, **kwargs)

        return wrapper

    return decorate


def history_requirement(kwargs: dict) -> tuple[int | None, bool]:
    """A history page after a cursor: only where the walk's snapshot has been replayed."""
    after = kwargs.get("after")
    if after is None or after.snapshot is None:
        return None, False
    _, lsn = split_snapshot(after.snapshot)
    return lsn, lsn is None


def record_write(user) -> None:
    """Remember where the primary's WAL stands now, after ``user``'s write request has committed."""
    with connections[PRIMARY].cursor() as cursor:
        cursor.execute(RECORD_WRITE_SQL, [user.pk])


class WritePositionMiddleware:
    """After each request that may have written (not GET, HEAD or OPTIONS) by an authenticated user,
    record the primary's WAL position for that user; with no replica configured, nothing."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if enabled() and request.method not in SAFE_METHODS:
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated:
                try:
                    record_write(user)
                except DatabaseError as error:
                    # The primary is unreachable: so is every read (the authentication runs there).
                    logger.warning("could not record the write position of user %s: %s", user.pk, error)
        return response
