"""Log setup: one line per event, as text (`key=value` extras appended) or as JSON objects.

Each gRPC call that reaches the event loop and each HTTP request runs with a request id (the
caller's `x-request-id` when it sent one), which every log line written for it carries.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def new_request_id(given: str | None = None) -> str:
    """The caller's id when it is sane, else a fresh one; set for the current task or thread."""
    rid = given if given and len(given) <= 128 and given.isprintable() else uuid.uuid4().hex[:16]
    request_id.set(rid)
    return rid


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        rid = request_id.get()
        if rid is not None:
            extras["request_id"] = rid
        text = " ".join(f"{k}={v}" for k, v in extras.items())
        return f"{line} {text}" if text else line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        rid = request_id.get()
        if rid is not None:
            entry["request_id"] = rid
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # One line per Lago request is noise at info; our own logs say what each request was for.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))


class Throttled:
    """Log lines about clients' mistakes, at most one per kind every `every` seconds: one bad client
    must not flood the logs. A line after a quiet spell says how many were left out."""

    def __init__(
        self, logger: logging.Logger, every: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._logger = logger
        self._every = every
        self._clock = clock
        self._last: dict[str, float] = {}
        self._dropped: dict[str, int] = {}

    def log(self, level: int, kind: str, message: str, **extra: Any) -> None:
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self._every:
            self._dropped[kind] = self._dropped.get(kind, 0) + 1
            return
        if len(self._last) > 1000:  # kinds are few; never let them grow without bound
            self._last.clear()
        self._last[kind] = now
        dropped = self._dropped.pop(kind, 0)
        if dropped:
            extra["similar_left_out"] = dropped
        self._logger.log(level, message, extra={"kind": kind, **extra})
