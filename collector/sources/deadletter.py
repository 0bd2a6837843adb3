"""Dead-letter file: every rejected record, with its reason, one JSON object per line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import IO


class DeadLetter:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._handle: IO[str] | None = None
        self.count = 0
        self.samples: list[tuple[str, str]] = []  # the first few (source, error), for summaries

    def add(self, source: str, raw: str, error: str) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        record = {
            "received_at": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "source": source,
            "raw": raw,
            "error": error,
        }
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.count += 1
        if len(self.samples) < 5:
            self.samples.append((source, error))

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
