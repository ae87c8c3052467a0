"""wallet_service/database_urls.py: URLs whose host is a socket directory survive the trip through
dj-database-url (settings.py) and libpq (psycopg, pgbench, pgbouncer's configuration)."""

from __future__ import annotations

import dj_database_url
import psycopg
import pytest
from django.db import connection

from wallet_service.database_urls import connection_parameters, database_url, settings_url

PARTS = {"user": "wallet@ops", "password": "p:a/ss@", "name": "test_wallet_service", "port": 5432}


@pytest.mark.parametrize("host", ["/Work/My checkout/var/pgrun", "127.0.0.1", "db.example.com", "::1", ""])
def test_every_part_reads_back_as_written(host):
    url = database_url(host=host, **PARTS)
    django = dj_database_url.parse(url)
    assert (django["HOST"], django["PORT"], django["USER"], django["PASSWORD"], django["NAME"]) == (
        host,
        5432,
        PARTS["user"],
        PARTS["password"],
        PARTS["name"],
    )
    libpq = connection_parameters(url)
    assert libpq == {
        "user": PARTS["user"],
        "password": PARTS["password"],
        "dbname": PARTS["name"],
        "port": "5432",
    } | ({"host": host} if host else {})


def test_a_socket_directory_is_not_taken_for_a_path():
    # Written as is, the directory would become the database name and the host would be empty.
    url = database_url(host="/work/x/var/pgrun", port=5432, user="postgres", name="test_wallet_service")
    assert url == "postgres://postgres@%2Fwork%2Fx%2Fvar%2Fpgrun:5432/test_wallet_service"


@pytest.mark.django_db
def test_the_settings_url_reaches_the_test_database_even_when_libpqs_defaults_lead_elsewhere(monkeypatch):
    # A URL that lost its host would fall back to PGHOST: here a directory with no server.
    monkeypatch.setenv("PGHOST", "/nonexistent")
    monkeypatch.setenv("PGDATABASE", "nonexistent")
    with psycopg.connect(settings_url(connection.settings_dict), connect_timeout=5) as direct:
        assert direct.execute("SELECT current_database()").fetchone() == (connection.settings_dict["NAME"],)
    with psycopg.connect(settings_url(connection.settings_dict, name="postgres"), connect_timeout=5) as admin:
        assert admin.execute("SELECT current_database(), current_user").fetchone() == (
            "postgres",
            connection.settings_dict["USER"],
        )
