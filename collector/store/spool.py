"""On-disk spool: batches that could not be written wait here, in order, until InfluxDB answers again.

One file per batch (`<sequence>-<crc32>.lp`), written to a temporary name, fsynced and renamed,
so a crash never leaves half a batch. Replay sends the oldest first and deletes a file only
after the server accepted it; with idempotent points, replay after a crash is safe. Only file
names are kept in memory.

Damage heals: a file where the spool directory belongs, stray files in it and a batch whose
checksum no longer matches (truncated or overwritten) are moved aside (`*.damaged-<time>`) and
reported once; of a damaged batch the complete lines before the damage are still sent, the
last, possibly cut, line is not. A full disk (ENOSPC) or `max_bytes` raises SpoolFullError.
"""

from __future__ import annotations

import logging
import os
import re
import zlib
from collections import deque
from pathlib import Path

from collector.quarantine import ensure_directory, quarantine
from collector.store.errors import SpoolFullError

log = logging.getLogger(__name__)

_BATCH = re.compile(r"^(\d{12})(?:-([0-9a-f]{8}))?\.lp$")  # files of older versions carry no checksum


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.dir = Path(directory)
        ensure_directory(self.dir, "nothing (the spool held no batches there)")
        self.max_bytes = max_bytes
        batches: list[tuple[int, Path]] = []
        for path in self.dir.iterdir():
            if path.suffix == ".tmp":  # a crash mid-append: that batch was never acknowledged
                path.unlink()
            elif (match := _BATCH.match(path.name)) and path.is_file():
                batches.append((int(match.group(1)), path))
            elif ".damaged-" not in path.name:
                quarantine(
                    path,
                    "not a spool batch",
                    "nothing the collector wrote",
                    "look at it: the spool holds only <sequence>-<crc32>.lp files",
                )
        self._files = deque(path for _, path in sorted(batches))
        self._next = max((seq for seq, _ in batches), default=-1) + 1
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
        final = self.dir / f"{self._next:012d}-{zlib.crc32(body):08x}.lp"
        tmp = final.with_suffix(".tmp")
        try:
            with open(tmp, "wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.rename(final)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise SpoolFullError(f"cannot write to the spool {self.dir}: {exc.strerror}") from None
        self._files.append(final)
        self._next += 1
        self._bytes += len(body)

    def oldest(self) -> tuple[Path, bytes] | None:
        """The oldest batch; a damaged one is moved aside and its intact lines returned."""
        if not self._files:
            return None
        path = self._files[0]
        body = path.read_bytes()
        match = _BATCH.match(path.name)
        if match is None or match.group(2) is None or int(match.group(2), 16) == zlib.crc32(body):
            return path, body
        intact = body[: body.rfind(b"\n")] if b"\n" in body else b""
        self._files.popleft()
        self._bytes -= len(body)
        kept = intact.count(b"\n") + 1 if intact else 0
        moved = quarantine(
            path,
            "spooled batch damaged (checksum mismatch)",
            f"the last line and anything cut after it; {kept} complete lines before it are still sent",
            "compare the file with what InfluxDB holds and write missing points with curl --data-binary",
        )
        if not intact:
            return self.oldest()
        salvage = self.dir / f"{int(match.group(1)):012d}-{zlib.crc32(intact):08x}.lp"
        salvage.write_bytes(intact)
        self._files.appendleft(salvage)
        self._bytes += len(intact)
        log.debug("salvaged %d lines of %s", kept, moved)
        return salvage, intact

    def remove(self, path: Path) -> None:
        size = path.stat().st_size
        path.unlink()
        self._files.remove(path)
        self._bytes -= size
