"""Intake: decoded record → validated, de-duplicated `Fill`, or a dead letter. Counts everything."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from collector.idwindow import IdWindow, id_line
from collector.model import Fill, FillValidator, RejectedRecord, event_json
from collector.sources.deadletter import DeadLetter
from collector.sources.records import RawRecord


class RecentIds:
    """The last `capacity` (account, fill_id) pairs seen: duplicates are dropped, memory stays bounded.

    The pairs themselves live in an anonymous temporary file (hash matches are confirmed there); it is
    rewritten with only the window's pairs when it holds twice `capacity`.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.window = IdWindow(capacity, tempfile.TemporaryFile())  # noqa: SIM115 - replaced, closed by GC
        self._journaled = 0

    def __len__(self) -> int:
        return len(self.window)

    def add(self, key: tuple[str, str]) -> bool:
        """True when new."""
        new = self.window.add(id_line(*key))
        self._count(int(new))
        return new

    def add_many(self, keys: Sequence[tuple[str, str]]) -> list[bool]:
        """`add` for each key, in order, checked at once."""
        new = self.window.add_many([id_line(*key) for key in keys])
        self._count(sum(new))
        return new

    def _count(self, added: int) -> None:
        self._journaled += added
        if self._journaled > 2 * self.capacity:
            old = self.window.journal
            self.window.move_to(tempfile.TemporaryFile())  # noqa: SIM115 - as above
            old.close()
            self._journaled = len(self.window)


@dataclass
class IntakeStats:
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    skipped: int = 0  # records that are not fills (subtotal rows, non-trade FIX messages)
    all_rejected: list[str] = field(default_factory=list)  # inputs that had records, every one rejected
    skip_reason: str | None = None  # why the last skipped record was not a fill
    no_fills: list[str] = field(default_factory=list)  # why an input with skipped records gave no fill


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
            self.stats.skip_reason = record.skipped
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
