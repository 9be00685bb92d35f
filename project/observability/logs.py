"""Log records that carry the request id, written as one JSON object per line or as plain text.

The request id lives in a ContextVar, set by project.http.middleware for the duration of a request:
context variables follow a request through sync views, async views and the thread that
`sync_to_async` runs a sync view in, where a thread-local would not. RequestIdFilter copies it
onto every record that reaches a handler, so lines from any logger (Django's own "Not Found",
a service's warning) carry it without passing it along.

This module imports nothing from Django: logging is configured before the apps are loaded.
"""

import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

NO_REQUEST = "-"
request_id_var: ContextVar[str | None] = ContextVar("postline_request_id", default=None)

# Every attribute a LogRecord has before `extra` is applied: anything else is an extra field.
_RECORD_ATTRIBUTES = frozenset(
    {
        *logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__,
        "message",
        "asctime",
        "request_id",
    }
)


def current_request_id() -> str:
    return request_id_var.get() or NO_REQUEST


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record (NO_REQUEST outside a request); never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id()
        return True


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a caller passed through `extra={...}`."""
    return {key: value for key, value in record.__dict__.items() if key not in _RECORD_ATTRIBUTES}


def _default(value: object) -> str:
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, request_id, then extras.

    Log shippers (Loki, CloudWatch, Elasticsearch) index these fields without a parsing rule;
    a traceback stays inside its record, in "exception", instead of spanning many lines.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or current_request_id(),
        }
        for key, value in extra_fields(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=_default).decode()


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal, still with the request id: `... INFO project.access [id] GET ...`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id()
        return super().format(record)
