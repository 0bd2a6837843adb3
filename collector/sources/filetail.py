"""`file` source: tail JSONL/CSV files (paths or globs), following rotation, resumable by byte offset.

The checkpoint token is, per file, (device, inode, offset of the next unread byte). Only whole
lines are consumed: a line still being written waits for its newline. Rotation by rename is
followed (the old file is read to its end, then the new one from byte 0); truncation restarts
the file at 0. On restore a file whose inode changed while we were down is looked up among the
other matches of the globs (rotated names usually match too).
"""

from __future__ import annotations

import glob
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any

from collector.config import FileSourceConfig
from collector.errors import UserError
from collector.sources.base import Batch, Checker, Event, Outlet, Source
from collector.sources.records import CsvDecoder, Format, RawRecord, decode_json_line, detect_format

log = logging.getLogger(__name__)

CHUNK = 1 << 20
FilePosition = tuple[int, int, int]  # device, inode, offset


@dataclass
class _Tracked:
    path: str
    fmt: Format
    handle: IO[bytes]
    dev: int
    ino: int
    offset: int = 0
    lineno: int = 0  # lines consumed, for "path:line" in dead letters
    csv: CsvDecoder | None = None
    pending: list[Event] = field(default_factory=list)

    def close(self) -> None:
        self.handle.close()


class FileTail(Source):
    def __init__(self, config: FileSourceConfig) -> None:
        self.name = config.name
        self.config = config
        self._files: dict[str, _Tracked] = {}
        self._restored: dict[str, FilePosition] = {}
        self._skipped: set[str] = set()  # matches with an unknown extension (warned about once)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    # ---- Source ------------------------------------------------------------------------------
    def restore(self, token: Any) -> None:
        if isinstance(token, dict):
            self._restored = {str(path): (int(pos[0]), int(pos[1]), int(pos[2])) for path, pos in token.items()}

    def start(self, outlet: Outlet, checker: Checker) -> None:
        self._thread = threading.Thread(target=self._run, args=(outlet, checker), name=f"source-{self.name}")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for tracked in self._files.values():
            tracked.close()

    # ---- loop --------------------------------------------------------------------------------
    def _run(self, outlet: Outlet, checker: Checker) -> None:
        try:
            while not self._stop.is_set():
                if not self.poll(outlet, checker):
                    self._stop.wait(self.config.poll_interval)
        except BaseException as exc:  # surfaced by the collector's readiness and logs
            self.error = exc
            log.exception("file source %s stopped", self.name)

    def poll(self, outlet: Outlet, checker: Checker) -> bool:
        """Read what is new in every matched file; True when anything was read."""
        self._discover()
        progressed = False
        for tracked in list(self._files.values()):
            progressed |= self._read(tracked, outlet, checker)
            if self._stop.is_set():
                break
            change = self._rotated(tracked)
            if change is None:
                continue
            if change != "truncated":  # drain what the old file still holds, then follow the path
                progressed |= self._read(tracked, outlet, checker, final=True)
                tracked.close()
                del self._files[tracked.path]
                if change == "gone" or not self._open(tracked.path, 0):
                    continue
            progressed |= self._read(self._files[tracked.path], outlet, checker)
        return progressed

    def token(self) -> dict[str, FilePosition]:
        return {path: (t.dev, t.ino, t.offset) for path, t in self._files.items()}

    # ---- files -------------------------------------------------------------------------------
    def _discover(self) -> None:
        for pattern in self.config.paths:
            matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
            for path in matches:
                if path not in self._files and path not in self._skipped and os.path.isfile(path):
                    self._open(path, self._resume_point(path))

    def _resume_point(self, path: str) -> int:
        """Offset to resume at: the saved one if this is still that file, or the saved one of its inode."""
        st = os.stat(path)
        identity = (st.st_dev, st.st_ino)
        saved = self._restored.get(path)
        if saved is not None and saved[:2] == identity and st.st_size >= saved[2]:
            del self._restored[path]
            return saved[2]
        for old_path, (dev, ino, offset) in list(self._restored.items()):
            if (dev, ino) == identity and st.st_size >= offset:  # rotated (renamed) while we were down
                del self._restored[old_path]
                return offset
        return 0

    def _open(self, path: str, offset: int) -> bool:
        if self.config.format == "auto":
            try:
                fmt = detect_format(path, None)
            except UserError as exc:
                log.warning("file source %s: skipping %s", self.name, exc)
                self._skipped.add(path)
                return False
        else:
            fmt = self.config.format
        try:
            handle = open(path, "rb")  # noqa: SIM115 - kept open while tailing; closed by stop()/rotation
        except OSError as exc:
            log.warning("file source %s: cannot open %s: %s", self.name, path, exc)
            return False
        st = os.fstat(handle.fileno())
        tracked = _Tracked(path, fmt, handle, st.st_dev, st.st_ino, offset)
        if fmt == "csv":
            tracked.csv = CsvDecoder(path)
        if offset:
            self._skip_to(tracked, offset)
        self._files[path] = tracked
        return True

    def _skip_to(self, tracked: _Tracked, offset: int) -> None:
        """Count lines before `offset` (for line numbers) and learn a CSV header from the file's start."""
        tracked.handle.seek(0)
        head = tracked.handle.read(offset)
        tracked.lineno = head.count(b"\n")
        if tracked.csv is not None:
            for line in head.split(b"\n"):
                if line.strip():
                    list(tracked.csv.decode([line]))  # the first non-blank line is the header
                    break

    def _rotated(self, tracked: _Tracked) -> str | None:
        """None: same file, "replaced": a new file is at the path, "gone", or "truncated" (offset reset)."""
        try:
            st = os.stat(tracked.path)
        except FileNotFoundError:
            return "gone"
        if (st.st_dev, st.st_ino) != (tracked.dev, tracked.ino):
            return "replaced"
        if st.st_size < tracked.offset:
            log.warning("%s was truncated; reading it again from its start", tracked.path)
            tracked.offset = tracked.lineno = 0
            if tracked.csv is not None:
                tracked.csv = CsvDecoder(tracked.path)
            return "truncated"
        return None

    def _read(self, tracked: _Tracked, outlet: Outlet, checker: Checker, final: bool = False) -> bool:
        progressed = False
        handle = tracked.handle
        while not self._stop.is_set():
            handle.seek(tracked.offset)
            data = handle.read(CHUNK)
            if not data:
                return progressed
            end = data.rfind(b"\n") + 1
            if end == 0:
                if len(data) < CHUNK and not final:
                    return progressed  # a line still being written
                end = len(data)  # an over-long line, or a rotated file's unterminated last line
            if not self._consume(tracked, data[:end], outlet, checker):
                return progressed
            progressed = True
        return progressed

    def _consume(self, tracked: _Tracked, data: bytes, outlet: Outlet, checker: Checker) -> bool:
        """Validate whole lines and hand them over in batches; offsets advance only with handed-over batches."""
        offset, lineno = tracked.offset, tracked.lineno
        events: list[Event] = []
        start = 0
        limit = self.config.batch_lines
        while start < len(data):
            stop = data.find(b"\n", start)
            stop = len(data) if stop < 0 else stop + 1
            line = data[start:stop].strip()
            lineno += 1
            offset += stop - start
            start = stop
            if line:
                event = self._decode(tracked, line, lineno, checker)
                if event is not None:
                    events.append(event)
            if len(events) >= limit or start >= len(data):
                if not outlet.put(Batch(self.name, events, token=self._token_with(tracked, offset))):
                    return False
                tracked.offset, tracked.lineno = offset, lineno
                events = []
        return True

    def _decode(self, tracked: _Tracked, line: bytes, lineno: int, checker: Checker) -> Event | None:
        record: RawRecord | None
        if tracked.csv is not None:
            record = next(iter(tracked.csv.decode([line], lineno)), None)  # None: it was the header
        else:
            record = decode_json_line(line, f"{tracked.path}:{lineno}")
        if record is None:
            return None
        result = checker.fill(record, time.time_ns())
        return None if isinstance(result, str) else result

    def _token_with(self, tracked: _Tracked, offset: int) -> dict[str, FilePosition]:
        token = self.token()
        token[tracked.path] = (tracked.dev, tracked.ino, offset)
        return token
