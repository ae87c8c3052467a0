"""Structured logs: one JSON object per line, each carrying the id of the request it belongs to.

Both Django (settings.LOGGING) and gunicorn (gunicorn.conf.py) format their records with
``JsonFormatter``, so every line on stderr is JSON. This module imports nothing from Django:
gunicorn's master process uses it before any Django code is loaded.
"""

from __future__ import annotations

import logging
import logging.config
import os
import re
from contextvars import ContextVar
from datetime import UTC, datetime

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

# An incoming X-Request-ID is kept when it looks like an id (a UUID, a hex digest, a proxy's
# "Root=1-abc-def"); anything else, or anything longer, is replaced by a fresh id.
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:=+/@-]{1,128}")

# Not django-guid or django-log-request-id: neither can keep only a plausible incoming id (django-guid takes a
# UUID or anything; django-log-request-id anything, of any length), and django-guid added about 50 us of CPU
# per request (a /status request costs about 530 us) where this module's part is 1 to 3 us.
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_request_id() -> str:
    """32 random hex digits (as ``uuid4().hex``, without building a UUID)."""
    return os.urandom(16).hex()


def accept_request_id(value: str | None) -> str:
    """The request's id: the client's or proxy's ``X-Request-ID`` when it is a plausible id, else a new one."""
    if value and REQUEST_ID_RE.fullmatch(value):
        return value
    return new_request_id()


def set_request_id(value: str | None) -> None:
    """Make ``value`` the id of every record logged from now on in this thread (``None``: no request)."""
    _request_id.set(value)


class JsonFormatter(BaseJsonFormatter):
    """``{"time", "level", "logger", "message", "request_id", "pid", ...extra fields}`` on one line.

    ``time`` is ISO 8601 UTC with milliseconds; ``pid`` tells gunicorn's workers apart. Fields
    passed with ``extra=`` follow (for request logs: ``method``, ``path``, ``status``,
    ``duration_ms``); an exception adds ``exc_info``. Django's request object, which
    ``django.request`` attaches to its records, is left out: the message already names the path,
    and its repr is noise.
    """

    FIELDS = ["asctime", "levelname", "name", "message", "request_id", "process"]
    RENAMED = {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"}

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("rename_fields", self.RENAMED)
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "request", "server_time"])
        super().__init__(self.FIELDS, *args, **kwargs)
        self._named = [(field, self._get_rename(field)) for field in self._required_fields]
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, tz=UTC)
        # Every line of one second shares its date and time (a log line a request: strftime once a second).
        second = int(moment.timestamp())
        if self._second[0] != second:
            self._second = (second, moment.strftime("%Y-%m-%dT%H:%M:%S."))
        return f"{self._second[1]}{moment.microsecond // 1000:03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        """python-json-logger's line, built in one pass for a record with a plain message (every request's line).

        The library's ``format`` builds the same object through several layers (a message dictionary, the
        required fields, static fields, the record's extras, a processing hook); a record with a dictionary
        for its message, an exception or a stack goes through it (wallet_service/tests/test_request_logs.py
        compares the two).
        """
        if isinstance(record.msg, dict) or record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        self._add_request_id(record)
        values = record.__dict__
        log_data = {renamed: values.get(field) for field, renamed in self._named}
        skip, rename = self._skip_fields, self.rename_fields
        for key, value in values.items():
            if key not in skip and not (hasattr(key, "startswith") and key.startswith("_")):
                log_data[rename.get(key, key)] = value
        return self.serialize_log_record(log_data)

    def add_fields(self, log_data, record, message_dict) -> None:
        self._add_request_id(record)
        super().add_fields(log_data, record, message_dict)

    @staticmethod
    def _add_request_id(record: logging.LogRecord) -> None:
        # The id of the request being served (None outside a request): a StreamHandler formats each
        # record in the thread that logs it, at once.
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get()


class SuspiciousRequestFilter(logging.Filter):
    """Django logs each request it refuses as suspicious (a Host not served here, too many fields) at
    ERROR with a traceback, under ``django.security.*``. Scanners send them all day: they are a
    client's mistake, not the service's, so the line is a WARNING and carries no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
        return True


def logging_config(level: str) -> dict:
    """The ``logging.config.dictConfig`` of the service at ``level`` (``info``, ``warning``...)."""
    level = level.upper()
    # Django's own line for each 4xx ("Not Found: /wallet/info/<token>") repeats the request line with
    # the full wallet token in it: only its 5xx lines (with their tracebacks) are kept.
    django_request_level = logging.getLevelName(max(logging.getLevelName(level), logging.ERROR))
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "wallet_service.logs.JsonFormatter"}},
        "filters": {"suspicious_request": {"()": "wallet_service.logs.SuspiciousRequestFilter"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "json",
            },
            "suspicious_requests": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "json",
                "filters": ["suspicious_request"],
            },
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django": {"handlers": ["console"], "level": level, "propagate": False},
            "django.request": {"handlers": ["console"], "level": django_request_level, "propagate": False},
            "django.security": {"handlers": ["suspicious_requests"], "level": level, "propagate": False},
            # gunicorn's own messages (start-up, worker timeouts); its access log is replaced by
            # the service's request log (wallet_service.request), which carries the request id.
            "gunicorn.error": {"handlers": ["console"], "level": level, "propagate": False},
            "gunicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
        },
    }


def configure_logging(config: dict) -> None:
    """Django's LOGGING_CONFIG: apply ``config``, and log Python warnings as JSON lines too (py.warnings)."""
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
    # What no line of ours shows is not collected for every record (the logging HOWTO's "Optimization"): the
    # calling function's file and line (a walk up the stack), the thread's and multiprocessing's names.
    # The pid is kept: every line carries it.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
