"""On-disk spool: batches that could not be written wait here, in order, until InfluxDB answers again.

One file per batch (`<sequence>.lp`), written to a temporary name, fsynced and renamed, so a
crash never leaves half a batch. Replay sends the oldest first and deletes a file only after
the server accepted it; with idempotent points, replay after a crash is safe. Only file names
are kept in memory.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path

from collector.store.errors import SpoolFullError


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        for leftover in self.dir.glob("*.tmp"):  # a crash mid-append: that batch was never acknowledged
            leftover.unlink()
        self._files = deque(sorted(self.dir.glob("*.lp")))
        self._next = int(self._files[-1].stem) + 1 if self._files else 0
        self._bytes = sum(path.stat().st_size for path in self._files)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._files)

    def append(self, body: bytes) -> None:
        if self._bytes + len(body) > self.max_bytes:
            raise SpoolFullError(
                f"spool {self.dir} is full ({self._bytes} of {self.max_bytes} bytes) and InfluxDB is not "
                "accepting writes; raise spool.max_bytes or bring InfluxDB back"
            )
        final = self.dir / f"{self._next:012d}.lp"
        tmp = final.with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.rename(final)
        self._files.append(final)
        self._next += 1
        self._bytes += len(body)

    def oldest(self) -> tuple[Path, bytes] | None:
        if not self._files:
            return None
        path = self._files[0]
        return path, path.read_bytes()

    def remove(self, path: Path) -> None:
        size = path.stat().st_size
        path.unlink()
        self._files.remove(path)
        self._bytes -= size
