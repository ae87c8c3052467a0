"""django_prometheus's PostgreSQL backend, counting each statement with label children resolved once.

django_prometheus's cursor counts every ``execute`` in ``django_db_execute_total``, times it in
``django_db_query_duration_seconds`` and counts its exceptions by type in ``django_db_errors_total``; to do
so it looks up the ``(alias, vendor)`` children of those metrics again for every statement (``labels()``: a
lock and a validation each) and builds two context managers. A charge sends six statements. This cursor
writes the same samples with the same labels, resolving the children once per connection
(bench/instructions.py measures the difference). Connections are counted by django_prometheus's
``DatabaseWrapperMixin``, unchanged.
"""

from __future__ import annotations

from time import perf_counter

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
    def get_connection_params(self):
        # django_prometheus's own wrapper is skipped: base.base is Django's PostgreSQL backend.
        conn_params = base.base.DatabaseWrapper.get_connection_params(self)
        conn_params["cursor_factory"] = counting_cursor(conn_params["cursor_factory"], self.alias, self.vendor)
        return conn_params
