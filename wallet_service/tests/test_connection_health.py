"""The persistent connection's health check (wallet_service/database): a poll of its socket, a round trip only
when the server spoke first or the connection stayed quiet; and a real PostgreSQL restarted under the server."""

from __future__ import annotations

import select
import time

import psycopg
import pytest
from django.db import connection
from django_prometheus.db import execute_total

from wallet_service.tests.servers import PostgresCluster, Server, request, scrape, signup


def statements_sent() -> float:
    return execute_total.labels(connection.alias, connection.vendor)._value.get()


def connected():
    connection.ensure_connection()
    return connection.connection


def test_a_connection_checked_a_moment_ago_is_usable_without_a_round_trip(transactional_db):
    connected()
    connection.last_checked = time.monotonic()
    before = statements_sent()
    assert connection.is_usable()
    assert statements_sent() == before  # Django's check would have sent SELECT 1


def test_a_connection_quiet_for_long_is_checked_with_a_statement(transactional_db):
    connected()
    connection.last_checked = time.monotonic() - connection.QUIET_CHECK_SECONDS - 1
    before = statements_sent()
    assert connection.is_usable()
    assert statements_sent() == before + 1


def test_a_connection_the_server_ended_is_replaced_before_a_request_uses_it(transactional_db, django_db_blocker):
    old = connected()
    pid = old.info.backend_pid
    with psycopg.connect(**{**old.info.get_parameters(), "dbname": "postgres"}, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
    # The server's FATAL message and end of file arrive on the idle connection's socket.
    poller = select.poll()
    poller.register(old.pgconn.socket, select.POLLIN)
    assert poller.poll(5000)
    connection.last_checked = time.monotonic()
    assert not connection.is_usable()
    # What Django does before a request's first statement (CONN_HEALTH_CHECKS).
    connection.health_check_done = False
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid
    assert connection.connection is not old


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_the_first_request_after_postgresql_restarts_is_answered(tmp_path, mode):
    cluster = PostgresCluster().init()
    try:
        cluster.query("postgres", "CREATE DATABASE wallet")
        server = Server({"DATABASE_URL": cluster.url("wallet")}, tmp_path / "server.log", workers=1)
        server.migrate()
        server.start()
        try:
            token = signup(server.base, "client", "ana@example.com")
            status, wallet = request(server.base, "POST", "/wallet/create", {}, token=token)
            assert status == 201, wallet
            for _ in range(3):
                assert request(server.base, "GET", f"/wallet/info/{wallet['wallet']}", token=token)[0] == 200
            connections = ("django_db_new_connections_total", (("alias", "default"), ("vendor", "postgresql")))
            opened = scrape(server.base)[connections]
            # Every open connection's server process ends (fast: with a FATAL message; immediate: at once).
            cluster.stop(mode)
            cluster.start()
            status, body = request(server.base, "GET", f"/wallet/info/{wallet['wallet']}", token=token)
            assert (status, body["balance"]) == (200, "0.00")
            assert scrape(server.base)[connections] == opened + 1
        finally:
            server.stop()
    finally:
        cluster.destroy()
