"""Intake: decoded record → validated, de-duplicated `Fill`, or a dead letter. Counts everything."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

from collector.model import Fill, FillValidator, RejectedRecord, event_json
from collector.sources.deadletter import DeadLetter
from collector.sources.records import RawRecord


class RecentIds:
    """The last `capacity` (account, fill_id) pairs seen: duplicates are dropped, memory stays bounded."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def oldest_first(self) -> Iterator[tuple[str, str]]:
        """The remembered pairs, oldest first."""
        return iter(self._seen)

    def add(self, key: tuple[str, str]) -> bool:
        """True when new."""
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True


@dataclass
class IntakeStats:
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    skipped: int = 0  # records that are not fills (subtotal rows, non-trade FIX messages)
    all_rejected: list[str] = field(default_factory=list)  # inputs that had records, every one rejected


class Intake:
    def __init__(self, validator: FillValidator, dead_letter: DeadLetter, dedupe_window: int) -> None:
        self.validator = validator
        self.dead_letter = dead_letter
        self.seen = RecentIds(dedupe_window)
        self.stats = IntakeStats()

    def accept(self, record: RawRecord, now_ns: int | None = None) -> Fill | None:
        """The fill to process, or None (rejected → dead letter, a duplicate, or skipped: not a fill)."""
        if record.skipped is not None:
            self.stats.skipped += 1
            return None
        if record.error is not None:
            self._reject(record, record.error)
            return None
        try:
            fill = self.validator.validate(record.data, now_ns if now_ns is not None else time.time_ns())
        except RejectedRecord as exc:
            self._reject(record, str(exc))
            return None
        return self.admit(fill)

    def admit(self, fill: Fill) -> Fill | None:
        """A fill validated already (typed decoding): None when it is a duplicate."""
        if not self.seen.add((fill.account, fill.fill_id)):
            self.stats.duplicates += 1
            return None
        self.stats.accepted += 1
        return fill

    def reject_event(self, fill: Fill, reason: str) -> None:
        """A valid record the engine could not apply (a bust of an unknown fill): a dead letter too."""
        self.stats.accepted -= 1
        self._reject(RawRecord(f"{fill.account}/{fill.fill_id}", event_json(fill)), reason)

    def _reject(self, record: RawRecord, reason: str) -> None:
        self.stats.rejected += 1
        self.dead_letter.add(record.source, record.raw_text, reason)
