"""django_prometheus's PostgreSQL backend, counting each statement with label children resolved once, and
checking a persistent connection's health without a round trip.

django_prometheus's cursor counts every ``execute`` in ``django_db_execute_total``, times it in
``django_db_query_duration_seconds`` and counts its exceptions by type in ``django_db_errors_total``; to do
so it looks up the ``(alias, vendor)`` children of those metrics again for every statement (``labels()``: a
lock and a validation each) and builds two context managers. A charge sends six statements. This cursor
writes the same samples with the same labels, resolving the children once per connection
(bench/instructions.py measures the difference). Connections are counted by django_prometheus's
``DatabaseWrapperMixin``, unchanged.

The health check (``CONN_HEALTH_CHECKS``: before a request's first statement) is Django's ``SELECT 1``, a
round trip on every request, only when the connection may have been lost silently; see
``DatabaseWrapper.is_usable``.
"""

from __future__ import annotations

import select
from time import monotonic, perf_counter

from django_prometheus.db import errors_total, execute_many_total, execute_total, query_duration_seconds
from django_prometheus.db.backends.postgresql import base


def counting_cursor(cursor_class, alias: str, vendor: str):
    """A subclass of ``cursor_class`` that counts and times its statements as django_prometheus's does."""
    executed = execute_total.labels(alias, vendor)
    executed_many = execute_many_total.labels(alias, vendor)
    duration = query_duration_seconds.labels(alias, vendor)

    def count_error(error: BaseException) -> None:
        errors_total.labels(alias, vendor, type(error).__name__).inc()

    class CountingCursor(cursor_class):
        def execute(self, *args, **kwargs):
            executed.inc()
            started = perf_counter()
            try:
                return super().execute(*args, **kwargs)
            except BaseException as error:
                count_error(error)
                raise
            finally:
                duration.observe(max(perf_counter() - started, 0))

        def executemany(self, query, param_list, *args, **kwargs):
            executed.inc(len(param_list))
            executed_many.inc(len(param_list))
            started = perf_counter()
            try:
                return super().executemany(query, param_list, *args, **kwargs)
            except BaseException as error:
                count_error(error)
                raise
            finally:
                duration.observe(max(perf_counter() - started, 0))

    return CountingCursor


class DatabaseWrapper(base.DatabaseWrapper):
    # A connection idle for longer than this is checked with Django's SELECT 1 (see is_usable).
    QUIET_CHECK_SECONDS = 10.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.last_checked = None  # monotonic(): when the connection was last known usable

    def connect(self):
        super().connect()
        self.last_checked = monotonic()

    def is_usable(self):
        """Whether the connection can take a statement, without a round trip when it was checked a moment ago.

        An idle connection's server has nothing to say to it, so a socket with something to read means the
        server spoke first: ended the connection (``pg_terminate_backend``, a restart, a crash: a FATAL
        message, then end of file) or sent a notice. Then, as for a connection that stayed quiet longer than
        ``QUIET_CHECK_SECONDS`` (a connection lost without a word — a host gone, a NAT's idle timeout — has an
        unreadable socket too, and only a statement finds out), Django's ``SELECT 1`` decides. Under load a
        worker's connection is checked every few milliseconds: a ``poll()`` of its socket instead of a round
        trip each time.
        """
        connection = self.connection
        now, last = monotonic(), self.last_checked
        self.last_checked = now
        if connection is None or connection.closed:
            return False
        if last is not None and now - last < self.QUIET_CHECK_SECONDS:
            try:
                poller = select.poll()
                poller.register(connection.pgconn.socket, select.POLLIN)
                if not poller.poll(0):
                    return True
            except (OSError, self.Database.Error):
                return False
        return super().is_usable()

    def get_connection_params(self):
        # django_prometheus's own wrapper is skipped: base.base is Django's PostgreSQL backend.
        conn_params = base.base.DatabaseWrapper.get_connection_params(self)
        conn_params["cursor_factory"] = counting_cursor(conn_params["cursor_factory"], self.alias, self.vendor)
        return conn_params
