"""Log output of every command: UTC times with milliseconds and a zone, as text or one JSON object per line."""

from __future__ import annotations

import json
import logging
import time

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def utc_time(created: float) -> str:
    """`2026-12-02T01:02:03.456Z`: RFC 3339 in UTC, milliseconds truncated (never rounded into the next second)."""
    seconds = int(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((created - seconds) * 1000):03d}Z"


class TextFormatter(logging.Formatter):
    """`<UTC time> LEVEL logger: message` (and the traceback, if any)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_time(record.created)


class JsonFormatter(logging.Formatter):
    """Structured logs: one JSON object per line (time, level, logger, message, exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": utc_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure(level: str, fmt: str) -> None:
    """Root logging to stderr at `level` (one of LEVELS) in `fmt` (text or json)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logging.basicConfig(level=getattr(logging, level), handlers=[handler])
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one line per job run is noise
