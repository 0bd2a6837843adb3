"""The duplicate-id memory of `run`, kept in an append-only journal instead of the checkpoint.

Pickling millions of remembered (account, fill_id) pairs at every checkpoint would stall the
engine for seconds. Instead each new pair is appended to a journal (one `account<TAB>fill_id`
line; both are free of control characters by the fill contract) and a checkpoint records only
the journal's generation and length. On restart the journal is cut back to that length — pairs
after it belong to events that will be processed again — and its last `capacity` pairs are
loaded. When a journal grows past twice `capacity` pairs, the remembered pairs are written to a
new generation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from collector.intake import RecentIds

Position = tuple[int, int]  # journal generation, length in bytes


class SeenIds:
    """Compaction writes a new generation; the old file stays valid until a checkpoint names the new one."""

    def __init__(self, directory: Path, capacity: int) -> None:
        self.dir = directory
        self.capacity = capacity
        self.memory = RecentIds(capacity)
        self.generation = 0
        self.entries = 0  # pairs in the current journal
        self._journal: IO[str] | None = None

    def _path(self, generation: int) -> Path:
        return self.dir / f"seen-ids.{generation}.log"

    def restore(self, position: Position | None) -> None:
        """Load the journal named by the checkpoint, cut to its length (None: no checkpoint, start empty)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.generation, length = position if position is not None else (0, 0)
        path = self._path(self.generation)
        for other in self.dir.glob("seen-ids.*.log"):
            if other != path:
                other.unlink()
        path.touch()
        with open(path, "r+b") as handle:
            handle.truncate(length)
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                account, _, fill_id = line.rstrip("\n").partition("\t")
                self.memory.add((account, fill_id))
                self.entries += 1
        self._journal = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def add(self, account: str, fill_id: str) -> bool:
        """True when the pair is new (and journaled), False for a duplicate."""
        if not self.memory.add((account, fill_id)):
            return False
        assert self._journal is not None
        self._journal.write(f"{account}\t{fill_id}\n")
        self.entries += 1
        return True

    def durable_position(self) -> Position:
        """Flush and fsync the journal; the position goes into the checkpoint. Compacts when due."""
        assert self._journal is not None
        if self.entries > 2 * self.capacity:
            self._compact()
        self._journal.flush()
        os.fsync(self._journal.fileno())
        return self.generation, self._journal.tell()

    def _compact(self) -> None:
        assert self._journal is not None
        self._journal.close()
        self.generation += 1
        self._journal = open(self._path(self.generation), "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        for account, fill_id in self.memory.oldest_first():
            self._journal.write(f"{account}\t{fill_id}\n")
        self.entries = len(self.memory)

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
