"""The HTTP intake's write-ahead journal: a request is answered 200 only once its records are on disk.

Each accepted request is one line `<crc32 hex> <JSON>` appended and fsynced before the answer;
the JSON holds the records as received plus the validation clock, so replaying a line
validates it exactly as before. A batch handed to the engine carries the journal position
after its line, and that position is what the checkpoint stores for the source: after a crash
(kill -9 included) the lines after the checkpointed position are replayed, so the engine sees
every acknowledged record exactly once more than the checkpoint did — the same mechanism the
file tail uses with its byte offsets.

The journal is split into segments (`<name>.<generation>.journal`); a new one starts past
`segment_bytes`, and segments before the checkpointed one are deleted once a checkpoint names a
later one. A torn last line (a crash mid-append, never acknowledged) is cut off; a damaged line
elsewhere is skipped and reported.
"""

from __future__ import annotations

import io
import logging
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from collector.quarantine import ensure_directory, quarantine

log = logging.getLogger(__name__)

Position = tuple[int, int]  # segment generation, byte offset
SEGMENT_BYTES = 64 << 20


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class IntakeJournal:
    def __init__(self, directory: Path, name: str, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.dir = directory
        self.name = name
        self.segment_bytes = segment_bytes
        self.generation = 0
        self._handle: io.FileIO | None = None

    def _path(self, generation: int) -> Path:
        return self.dir / f"{self.name}.{generation}.journal"

    def _generations(self) -> list[int]:
        found = []
        for path in self.dir.glob(f"{self.name}.*.journal"):
            middle = path.name[len(self.name) + 1 : -len(".journal")]
            if middle.isdigit() and path.is_file():
                found.append(int(middle))
        return sorted(found)

    def replay(self, position: Position | None) -> Iterator[tuple[dict[str, Any], Position]]:
        """Entries after `position` (None: from the start), each with the position after it; then opens for append."""
        ensure_directory(self.dir, "nothing (it held no state)")
        start_gen, start_offset = position if position is not None else (0, 0)
        generations = [g for g in self._generations() if g >= start_gen] or [start_gen]
        damaged = 0
        for generation in generations:
            path = self._path(generation)
            offset = start_offset if generation == start_gen else 0
            data = path.read_bytes() if path.is_file() else b""
            end = data.rfind(b"\n") + 1
            if end < len(data):
                log.warning(
                    "intake journal %s: cut a torn last line (%d bytes, never acknowledged)", path, len(data) - end
                )
                with open(path, "r+b") as handle:
                    handle.truncate(end)
            while offset < end:
                newline = data.index(b"\n", offset)
                line, offset = data[offset:newline], newline + 1
                entry = _parse(line)
                if entry is None:
                    damaged += 1
                    continue
                yield entry, (generation, offset)
        if damaged:
            log.error("intake journal %s: skipped %d damaged line(s) (bad checksum or JSON)", self.dir, damaged)
        self.generation = generations[-1]
        for old in self._generations():
            if old < start_gen:
                self._path(old).unlink()
        current = self._path(self.generation)
        if os.path.lexists(current) and not current.is_file():
            quarantine(current, "not a file", "nothing readable", "nothing to do; the journal starts afresh")
        self._handle = open(current, "ab", buffering=0)  # noqa: SIM115 - closed in close()

    def append(self, entry: dict[str, Any]) -> Position:
        """Write one entry and fsync it; the position after it. OSError (e.g. ENOSPC) leaves nothing half-counted."""
        assert self._handle is not None, "replay() opens the journal"
        body = orjson.dumps(entry)
        line = b"%08x %s\n" % (zlib.crc32(body), body)
        handle = self._handle
        before = handle.tell()
        try:
            view = memoryview(line)
            while view:  # unbuffered: a failed write leaves nothing behind in a buffer
                view = view[handle.write(view) or 0 :]
            os.fsync(handle.fileno())
        except OSError:
            handle.truncate(before)  # a partial line would be cut at the next start anyway
            handle.seek(before)
            raise
        position = (self.generation, self._handle.tell())
        if position[1] >= self.segment_bytes:
            self._handle.close()
            self.generation += 1
            self._handle = open(self._path(self.generation), "ab", buffering=0)  # noqa: SIM115 - closed in close()
            _fsync_dir(self.dir)
        return position

    def release(self, position: Position) -> None:
        """A checkpoint covers everything up to `position`: older segments are no longer needed."""
        for old in self._generations():
            if old < position[0]:
                self._path(old).unlink()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _parse(line: bytes) -> dict[str, Any] | None:
    checksum, _, body = line.partition(b" ")
    try:
        if int(checksum, 16) != zlib.crc32(body):
            return None
        entry = orjson.loads(body)
    except (ValueError, orjson.JSONDecodeError):
        return None
    return entry if isinstance(entry, dict) else None
