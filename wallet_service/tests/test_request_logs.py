"""Structured logs: the request id (taken or made, echoed in X-Request-ID) and one JSON line per record."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from wallet_service import logs
from wallets.tests.factories import WalletFactory

GENERATED_ID = re.compile(r"[0-9a-f]{32}")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


class JsonLines(logging.Handler):
    """Formats each record as the service's console handler does: at once, in the logging thread."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(logs.JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def of(self, logger: str) -> list[dict]:
        parsed = [json.loads(line) for line in self.lines]
        return [line for line in parsed if line["logger"] == logger]


@pytest.fixture
def json_logs():
    handler = JsonLines()
    loggers = [logging.getLogger(name) for name in ("wallet_service.request", "django.request")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield handler
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert all("\n" not in line for line in handler.lines)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "incoming",
    ["0f8fa1f2-4b5e-4c8e-9a3e-1c2d3e4f5a6b", "abc", "Root=1-67891233-abcdef012345678912345678", "x" * 128],
)
def test_a_plausible_incoming_request_id_is_kept_and_echoed(api_client, json_logs, incoming):
    response = api_client.get("/wallet/list", HTTP_X_REQUEST_ID=incoming)
    assert response.status_code == 401
    assert response["X-Request-ID"] == incoming
    assert [line["request_id"] for line in json_logs.of("wallet_service.request")] == [incoming]


@pytest.mark.django_db
@pytest.mark.parametrize("incoming", [None, "", "x" * 129, "has space", 'quote"d', "semi;colon", "é"])
def test_a_missing_or_implausible_request_id_is_replaced_by_a_new_one(api_client, json_logs, incoming):
    headers = {} if incoming is None else {"HTTP_X_REQUEST_ID": incoming}
    first = api_client.get("/wallet/list", **headers)["X-Request-ID"]
    second = api_client.get("/wallet/list", **headers)["X-Request-ID"]
    assert GENERATED_ID.fullmatch(first) and GENERATED_ID.fullmatch(second)
    assert first != second
    assert [line["request_id"] for line in json_logs.of("wallet_service.request")] == [first, second]


@pytest.mark.django_db
def test_each_request_is_logged_as_one_json_line(client_api, json_logs):
    response = client_api.post("/wallet/create", {}, HTTP_X_REQUEST_ID="req-42")
    assert response.status_code == 201
    (line,) = json_logs.of("wallet_service.request")
    assert TIME.fullmatch(line.pop("time"))
    assert isinstance(line.pop("duration_ms"), float)
    assert line.pop("pid") == os.getpid()
    assert line == {
        "level": "INFO",
        "logger": "wallet_service.request",
        "message": "POST /wallet/create 201",
        "request_id": "req-42",
        "method": "POST",
        "path": "/wallet/create",
        "status": 201,
    }


@pytest.mark.django_db
def test_records_logged_while_serving_a_request_carry_its_id(client_api, json_logs):
    response = client_api.get("/wallet/info/no-such-wallet", HTTP_X_REQUEST_ID="req-404")
    assert response.status_code == 404
    # Django logs a 4xx or 5xx response after the middleware chain has returned (the service keeps
    # only its 5xx lines, json_logs takes all): the id is still the request's.
    (line,) = json_logs.of("django.request")
    assert (line["level"], line["request_id"], line["status_code"]) == ("WARNING", "req-404", 404)
    assert "request" not in line  # Django's request object is not dumped into the line
    # Once the response is closed, records carry no id.
    logging.getLogger("wallet_service.request").info("between requests")
    assert json_logs.of("wallet_service.request")[-1]["request_id"] is None


@pytest.mark.django_db
def test_wallet_tokens_in_paths_are_shortened_in_the_request_log(client_api, json_logs):
    wallet = WalletFactory(owner=client_api.user)
    assert client_api.get(f"/wallet/history/{wallet.token}").status_code == 200
    (line,) = json_logs.of("wallet_service.request")
    assert line["path"] == f"/wallet/history/{wallet.token[:6]}..."
    assert wallet.token not in json.dumps(line)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/wallet/infox/{token}", "/{token}", "/wallet/info/{token}/extra/{token}"])
def test_wallet_tokens_in_unmatched_paths_are_shortened_too(client_api, json_logs, path):
    wallet = WalletFactory(owner=client_api.user)
    assert client_api.get(path.format(token=wallet.token)).status_code == 404
    (line,) = json_logs.of("wallet_service.request")
    assert line["path"] == path.format(token=wallet.token[:6] + "...")
    assert wallet.token not in json.dumps(line)


def test_a_refused_host_is_a_warning_without_a_traceback(api_client):
    # The handler the service's logging configuration gives django.security, writing here for the test.
    (handler,) = [
        handler
        for handler in logging.getLogger("django.security").handlers
        if any(isinstance(found, logs.SuspiciousRequestFilter) for found in handler.filters)
    ]
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        assert api_client.get("/status", HTTP_HOST="evil.example.com").status_code == 400
    finally:
        handler.setStream(previous)
    (line,) = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert line["logger"] == "django.security.DisallowedHost"
    assert line["level"] == "WARNING"
    assert "evil.example.com" in line["message"]
    assert "exc_info" not in line and "Traceback" not in json.dumps(line)


@pytest.mark.django_db
def test_successful_health_checks_and_scrapes_are_logged_at_debug_and_errors_louder(api_client, json_logs):
    assert api_client.get("/status").status_code == 200
    assert api_client.get("/metrics").status_code == 200
    assert api_client.get("/nowhere").status_code == 404
    assert [(line["path"], line["level"]) for line in json_logs.of("wallet_service.request")] == [
        ("/status", "DEBUG"),
        ("/metrics", "DEBUG"),
        ("/nowhere", "INFO"),
    ]


def test_djangos_lines_about_4xx_are_off_and_its_5xx_lines_kept():
    assert logs.logging_config("info")["loggers"]["django.request"]["level"] == "ERROR"
    assert logs.logging_config("critical")["loggers"]["django.request"]["level"] == "CRITICAL"


def test_an_exception_is_logged_inside_the_json_line():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed: %s", ("it",), sys.exc_info())
    line = json.loads(logs.JsonFormatter().format(record))
    assert (line["level"], line["message"]) == ("ERROR", "failed: it")
    assert "ValueError: boom" in line["exc_info"]


def library_line(formatter: logs.JsonFormatter, record: logging.LogRecord) -> str:
    """The line python-json-logger's own ``format`` makes of ``record`` with the service's settings."""
    from pythonjsonlogger.json import JsonFormatter as LibraryFormatter

    return LibraryFormatter.format(formatter, record)


@pytest.mark.parametrize(
    ("msg", "args", "extra"),
    [
        ("%s %s %s", ("GET", "/wallet/info/abcdef...", 200), {"method": "GET", "status": 200, "duration_ms": 1.5}),
        ('plain ñ € \u2028 "quoted"', (), {}),
        ("%d%%", (5,), {"amount": Decimal("1.10"), "none": None, "items": [1, "a"]}),
        ("when", (), {"at": datetime(2026, 1, 2, 3, 4, 5), "_private": 1, "request_id": "own"}),
        ({"a dict": "message", "n": 1}, (), {"path": "/x"}),
    ],
)
@pytest.mark.parametrize("request_id", [None, "req-7"])
def test_the_formatter_writes_the_line_python_json_logger_writes(msg, args, extra, request_id):
    formatter = logs.JsonFormatter()
    logs.set_request_id(request_id)
    try:
        for exc_info in (None, (ValueError, ValueError("bad"), None)):
            record = logging.getLogger("any").makeRecord("wallet_service.x", logging.INFO, "f", 1, msg, args, exc_info)
            record.__dict__.update(extra)
            twin = logging.makeLogRecord(record.__dict__)
            assert formatter.format(record) == library_line(formatter, twin)
    finally:
        logs.set_request_id(None)


def test_the_time_is_the_record_s_in_utc_with_milliseconds_across_seconds():
    formatter = logs.JsonFormatter()
    for created in (1700000000.0, 1700000000.999, 1700000001.0005, 1700000001.9999996, 1700000002.5, 1700000000.25):
        record = logging.makeLogRecord({"created": created})
        moment = datetime.fromtimestamp(created, tz=UTC)
        expected = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        assert formatter.formatTime(record) == expected
