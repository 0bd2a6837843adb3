"""What every live source shares: the batch it hands over, its interface, and record checking.

Sources run in their own threads and hand validated events to the engine through one bounded
queue (`Outlet`), so a slow engine or InfluxDB pushes back on the sources instead of growing
memory. Duplicates are dropped later, in the engine thread, so that the de-duplication memory
and the checkpoint always describe the same set of processed events.
"""

from __future__ import annotations

import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.model import Fill, FillValidator, Mark, RejectedRecord, validate_mark
from collector.sources.deadletter import DeadLetter
from collector.sources.records import RawRecord

Event = Fill | Mark


@dataclass(slots=True)
class Batch:
    """Events of one source in arrival order, and the source's position after them (its checkpoint)."""

    source: str
    events: list[Event]
    received_ns: int = field(default_factory=time.perf_counter_ns)  # for end-to-end latency
    token: Any = None


EVENTS_PER_BATCH = 500  # the unit `run.queue_batches` counts in: the default 64 hold ≤ 32k events (~14 MB of fills)


class _BatchQueue(queue.Queue[Batch]):
    """A queue whose size is its batches' weight, ⌈events / EVENTS_PER_BATCH⌉ each (at least 1).

    The bound then holds events, hence memory (~450 B per queued Fill), whatever batch size a
    source is configured with: 64 batches of 100k lines would otherwise queue ~3 GB. A put waits
    only while the queue is full, so a batch heavier than the whole bound still goes in."""

    def _init(self, maxsize: int) -> None:
        super()._init(maxsize)
        self.weight = 0

    def _qsize(self) -> int:
        return self.weight

    def _put(self, item: Batch) -> None:
        self.weight += _weight(item)
        self.queue.append(item)

    def _get(self) -> Batch:
        item: Batch = self.queue.popleft()
        self.weight -= _weight(item)
        return item


def _weight(batch: Batch) -> int:
    return max(1, -(-len(batch.events) // EVENTS_PER_BATCH))


class Outlet:
    """The bounded hand-over to the engine; `put` blocks (backpressure) until there is room or we stop."""

    def __init__(self, max_batches: int, stopping: threading.Event) -> None:
        """`max_batches` counts batches of up to EVENTS_PER_BATCH events (a bigger one counts as several)."""
        self.queue: queue.Queue[Batch] = _BatchQueue(maxsize=max_batches)
        self.stopping = stopping
        self.problem: Callable[[], str | None] = lambda: None  # why the consumer cannot take input now

    def put(self, batch: Batch) -> bool:
        """False when the collector is stopping and the batch was not taken."""
        while not self.stopping.is_set():
            try:
                self.queue.put(batch, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def offer(self, batch: Batch) -> bool:
        """Put without waiting (HTTP intake answers 503 instead of holding the request)."""
        try:
            self.queue.put_nowait(batch)
            return True
        except queue.Full:
            return False

    def depth(self) -> int:
        """Batches waiting (not their weight)."""
        with self.queue.mutex:
            return len(self.queue.queue)


class Checker:
    """Validation shared by source threads: a valid event, or a dead letter with the reason."""

    def __init__(self, validator: FillValidator, dead_letter: DeadLetter) -> None:
        self.validator = validator
        self.dead_letter = dead_letter
        self.rejected = 0
        self._lock = threading.Lock()

    def fill(self, record: RawRecord, now_ns: int) -> Fill | str:
        """The fill, or the reason it was rejected (already dead-lettered)."""
        if record.error is not None:
            return self.reject(record, record.error)
        try:
            return self.validator.validate(record.data, now_ns)
        except RejectedRecord as exc:
            return self.reject(record, str(exc))

    def mark(self, record: RawRecord, now_ns: int) -> Mark | str:
        if record.error is not None:
            return self.reject(record, record.error)
        try:
            return validate_mark(record.data, now_ns + self.validator.max_future_skew_ns)
        except RejectedRecord as exc:
            return self.reject(record, str(exc))

    def reject(self, record: RawRecord, reason: str) -> str:
        with self._lock:
            self.rejected += 1
            self.dead_letter.add(record.source, record.raw_text, reason)
        return reason

    def flush(self) -> None:
        with self._lock:
            self.dead_letter.flush()


class Source(ABC):
    """A live source of fills and marks. `restore` runs before `start`, with the last checkpoint token."""

    name: str

    def restore(self, token: Any) -> None:  # noqa: B027 - most sources have no position to restore
        """Continue after `token` (what the last processed batch of this source carried)."""

    @abstractmethod
    def start(self, outlet: Outlet, checker: Checker) -> None:
        """Begin producing batches from a thread of its own."""

    @abstractmethod
    def stop(self) -> None:
        """Stop producing and wait for the thread to end (batches already handed over stay valid)."""

    def use_state_dir(self, directory: Path) -> None:  # noqa: B027 - only sources with their own state use it
        """Where the source may keep state of its own (the HTTP intake's journal); called before `restore`."""

    def checkpointed(self, token: Any) -> None:  # noqa: B027 - only sources with state to release use it
        """A checkpoint now covers everything up to `token`: state kept for a replay before it may go."""

    def ready(self) -> bool:
        return True

    def failure(self) -> BaseException | None:
        """What stopped the source's thread, if it died (the collector restarts it with backoff)."""
        return None

    def problem(self) -> str | None:
        """Why the source cannot take input right now (shown by /readyz), or None."""
        return None
