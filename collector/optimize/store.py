"""The parameter store the trading system reads, and the audit trail of every change.

The store is one JSON file, replaced atomically (temporary file, fsync, rename) so a reader
never sees half of it: {"version", "updated", "parameters": {strategy: {account or "*": {name:
value}}}}. An optional HTTP push sends the same document to the trading system, with retries.
Every change (applied, dry run, rolled back) is appended to a JSONL audit file and fsynced.

Both files may be edited by hand, so both are validated when read: a store that is not valid
JSON (NaN and Infinity included) or not of that shape is a `UserError` naming file and line
(the trading system could not read it either); a value of the wrong type (a string, null, a
bool for a number) is reported once and the declared default used instead, and bounds are
applied by the guardrails to whatever is stored. A non-finite value is never written. A broken
audit line is reported and skipped.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from collector.errors import UserError

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
        self._reported: set[tuple[str, str, str]] = set()
        if self.path.exists():
            self.document = _read_store(self.path)

    def get(self, strategy: str, account: str, name: str, default: float | bool) -> float | bool:
        """The account's own value, else the strategy-wide one, else the declared default.

        A stored value of the wrong type for `default` (or not finite) is skipped, reported once.
        """
        books = self.document["parameters"].get(strategy, {})
        for key in (account, ALL_ACCOUNTS):
            if name not in books.get(key, {}):
                continue
            value = books[key][name]
            if isinstance(default, bool) == isinstance(value, bool) and _is_value(value):
                return value  # type: ignore[no-any-return]
            if (strategy, key, name) not in self._reported:
                self._reported.add((strategy, key, name))
                log.warning(
                    "%s: parameters.%s.%s.%s = %r is not a valid %s; using %r instead",
                    self.path,
                    strategy,
                    key,
                    name,
                    value,
                    "true/false" if isinstance(default, bool) else "number",
                    default if key == ALL_ACCOUNTS else "the strategy-wide value or the default",
                )
        return default

    def set(self, strategy: str, account: str, name: str, value: float | bool) -> None:
        if not _is_value(value):
            raise ValueError(f"refusing to store {name} = {value!r}: not a finite number or true/false")
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
            json.dump(self.document, handle, indent=2, sort_keys=True, allow_nan=False)
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


def _is_value(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, int | float) and math.isfinite(value))


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _read_store(path: Path) -> dict[str, Any]:
    """The store document, or UserError with file, line and what was expected."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constants)
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte offset {exc.start}); fix or remove the file") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg}); fix or remove the file") from None
    except ValueError as exc:
        raise UserError(f"{path}: {exc} (NaN and Infinity are not valid parameter values)") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from None
    expected = '{"version": N, "updated": ..., "parameters": {strategy: {account or "*": {name: value}}}}'
    parameters = document.get("parameters") if isinstance(document, dict) else None
    version = document.get("version", 0) if isinstance(document, dict) else None
    if (
        not isinstance(parameters, dict)
        or not isinstance(version, int)
        or isinstance(version, bool)
        or not all(isinstance(books, dict) for books in parameters.values())
        or not all(isinstance(values, dict) for books in parameters.values() for values in books.values())
    ):
        raise UserError(f"{path}: not a parameter store; expected {expected}")
    store: dict[str, Any] = document
    store.setdefault("version", 0)
    return store


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
        """Every readable change, in order; a line that is not a change record is reported and skipped."""
        if not self.path.exists():
            return []
        out = []
        bad: list[int] = []
        for number, line in enumerate(self.path.read_bytes().split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                record = ChangeRecord(**json.loads(line, parse_constant=_no_constants))
            except (ValueError, TypeError):
                bad.append(number)
                continue
            out.append(record)
        if bad:
            log.warning("%s: skipped %d unreadable line(s): %s", self.path, len(bad), ", ".join(map(str, bad[:10])))
        return out

    def find(self, change_id: str) -> ChangeRecord | None:
        return next((r for r in self.records() if r.id == change_id), None)
