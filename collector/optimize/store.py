"""The parameter store the trading system reads, and the audit trail of every change.

The store is one JSON file, replaced atomically (temporary file, fsync, rename) so a reader
never sees half of it: {"version", "updated", "parameters": {strategy: {account or "*": {name:
value}}}}. An optional HTTP push sends the same document to the trading system, with retries.
Every change (applied, dry run, rolled back) is appended to a JSONL audit file and fsynced.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

log = logging.getLogger(__name__)

ALL_ACCOUNTS = "*"


def iso_time(ts_ns: int | None = None) -> str:
    """RFC 3339 (ms) of an epoch-ns time, default now."""
    moment = datetime.now(UTC) if ts_ns is None else datetime.fromtimestamp(ts_ns / 1e9, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ParameterStore:
    def __init__(self, path: Path, push_url: str | None = None, timeout: float = 5.0, retries: int = 3) -> None:
        self.path = Path(path)
        self.push_url, self.timeout, self.retries = push_url, timeout, retries
        self.document: dict[str, Any] = {"version": 0, "updated": None, "parameters": {}}
        if self.path.exists():
            self.document = json.loads(self.path.read_text(encoding="utf-8"))

    def get(self, strategy: str, account: str, name: str, default: float | bool) -> float | bool:
        """The account's own value, else the strategy-wide one, else the declared default."""
        books = self.document["parameters"].get(strategy, {})
        for key in (account, ALL_ACCOUNTS):
            if name in books.get(key, {}):
                value: float | bool = books[key][name]
                return value
        return default

    def set(self, strategy: str, account: str, name: str, value: float | bool) -> None:
        self.document["parameters"].setdefault(strategy, {}).setdefault(account, {})[name] = value
        self.document["version"] += 1
        self.document["updated"] = iso_time()
        self._write()
        if self.push_url:
            self._push()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(self.document, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def _push(self) -> None:
        assert self.push_url is not None
        for attempt in range(self.retries + 1):
            try:
                answer = requests.post(self.push_url, json=self.document, timeout=self.timeout)
                if answer.status_code < 300:
                    return
                if 400 <= answer.status_code < 500 and answer.status_code != 429:
                    break  # the receiver refuses this document; retrying will not help
            except requests.RequestException as exc:
                log.warning("parameter push failed (%s), attempt %d", exc, attempt + 1)
            time.sleep(0.5 * 2**attempt)
        log.error("parameter push to %s failed; the file %s is up to date", self.push_url, self.path)


@dataclass
class ChangeRecord:
    """One audited change: what, why (the suggestion and its evidence), before/after, what happened."""

    strategy: str
    account: str
    param: str
    old: float | bool
    new: float | bool
    action: str  # apply | rollback | dry-run | refused
    rule: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    suggestion_id: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    time: str = field(default_factory=iso_time)
    rolls_back: str | None = None  # for a rollback: the id of the change it undoes


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, record: ChangeRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(record), sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def records(self) -> list[ChangeRecord]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [ChangeRecord(**json.loads(line)) for line in lines if line.strip()]

    def find(self, change_id: str) -> ChangeRecord | None:
        return next((r for r in self.records() if r.id == change_id), None)
