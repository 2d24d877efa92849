"""Structured logging: one line per event, ``key=value`` text or JSON, with the CSI request id on every line.

Use ``log_event(logger, "volume.create", volume_id=..., took_ms=...)``; the event name and fields become keys.
Every field is cut to ``FIELD_LIMIT`` characters here, whoever logs it: fields carry what clients sent (a volume
name, an error quoting it), and one oversized request must not write megabytes per call.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any, TextIO

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("rds_csi_request_id", default=None)

_FIELDS_ATTR = "rds_fields"
FIELD_LIMIT = 1024
_TEXT_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@+,*")


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event. Cheap when the level is disabled."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={_FIELDS_ATTR: fields})


def _bounded(value: Any) -> Any:
    """``value`` itself when its text fits in ``FIELD_LIMIT``, else that text cut, with its full length."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else str(value)
    if len(text) <= FIELD_LIMIT:
        return value
    return f"{text[:FIELD_LIMIT]}...({len(text)} characters)"


def _text_value(value: Any) -> str:
    text = str(value)
    if text and all(c in _TEXT_SAFE for c in text):
        return text
    return json.dumps(text)


def _timestamp(record: logging.LogRecord) -> str:
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{base}.{int(record.msecs):03d}Z"


def _record_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "ts": _timestamp(record),
        "level": record.levelname.lower(),
        "logger": record.name,
    }
    fields["event"] = record.getMessage()
    request_id = REQUEST_ID.get()
    if request_id is not None:
        fields["request_id"] = request_id
    fields.update((key, _bounded(value)) for key, value in getattr(record, _FIELDS_ATTR, {}).items())
    if record.exc_info:
        fields["error"] = logging.Formatter().formatException(record.exc_info)
    return fields


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_text_value(v)}" for k, v in _record_fields(record).items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_record_fields(record), default=str, separators=(",", ":"))


def configure_logging(log_format: str, level: str, stream: TextIO | None = None) -> None:
    """Install one handler on the ``rds_csi`` logger (idempotent: replaces a previous one)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger("rds_csi")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
