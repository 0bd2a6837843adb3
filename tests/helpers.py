"""Small helpers shared by tests."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def write_jsonl(path: Path, records: Iterable[dict[str, Any] | str]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write((record if isinstance(record, str) else json.dumps(record)) + "\n")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def fill(**overrides: Any) -> dict[str, Any]:
    """A valid fill record; override any field."""
    record: dict[str, Any] = {
        "ts": "2024-03-01T14:30:00.123456Z",
        "account": "ACC1",
        "strategy": "trend_es",
        "symbol": "ES",
        "side": "buy",
        "qty": 2.0,
        "price": 5100.25,
        "fill_id": "f-1",
    }
    record.update(overrides)
    return record
