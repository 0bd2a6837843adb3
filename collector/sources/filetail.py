"""`file` source: tail JSONL/CSV files (paths or globs), following rotation, resumable by byte offset.

The checkpoint token is, per file, (device, inode, offset of the next unread byte, length and
CRC-32 of the file's first bytes as read). Only whole lines are consumed: a line still being
written waits for its newline. Rotation by rename is followed (the old file is read to its end,
then the new one from byte 0); truncation restarts the file at 0. A file truncated and refilled
past the old offset between two polls (or while the collector was down) keeps its inode and
size, so its first FINGERPRINT_BYTES are compared with what was read: if they changed it is
read again from byte 0 (rewrites that keep those bytes identical stay undetectable). On restore
a file whose inode changed while we were down is looked up among the other matches of the
globs (rotated names usually match too). Every rotation case is logged.

A source thread that dies (e.g. the dead-letter file cannot be written on a full disk) is
restarted by the collector with backoff and resumes from the last batch it handed over.
"""

from __future__ import annotations

import glob
import logging
import os
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import IO, Any

from collector.config import FileSourceConfig
from collector.errors import UserError
from collector.sources.base import Batch, Checker, Event, Outlet, Source
from collector.sources.colmap import Mapper, load_map
from collector.sources.records import CsvDecoder, Format, RawRecord, decode_json_line, detect_format

log = logging.getLogger(__name__)

CHUNK = 1 << 20
FINGERPRINT_BYTES = 4096
FilePosition = tuple[int, int, int, int, int]  # device, inode, offset, fingerprint length, fingerprint CRC-32


@dataclass
class _Tracked:
    path: str
    fmt: Format
    handle: IO[bytes]
    dev: int
    ino: int
    offset: int = 0
    head: bytes = b""  # the file's first bytes as consumed (up to FINGERPRINT_BYTES): its fingerprint
    lineno: int = 0  # lines consumed, for "path:line" in dead letters
    csv: CsvDecoder | None = None
    pending: list[Event] = field(default_factory=list)
    broken: str | None = None  # a header without the mapped columns: the file is not read on
    records: int = 0  # records read that were not skipped (fills or rejects) since it was opened
    skipped: int = 0  # records the map skipped as not fills, and the reason of the last one
    skip_reason: str | None = None
    told_no_fill: bool = False  # "every record skipped" is logged once per file

    def close(self) -> None:
        self.handle.close()

    def position(self, offset: int) -> FilePosition:
        return (self.dev, self.ino, offset, len(self.head), zlib.crc32(self.head))


class FileTail(Source):
    def __init__(self, config: FileSourceConfig) -> None:
        self.name = config.name
        self.config = config
        self._files: dict[str, _Tracked] = {}
        self._restored: dict[str, FilePosition] = {}
        self._skipped: set[str] = set()  # matches with an unknown extension (warned about once)
        self.mapper = Mapper(load_map(config.map), str(config.map)) if config.map is not None else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    # ---- Source ------------------------------------------------------------------------------
    def restore(self, token: Any) -> None:
        if isinstance(token, dict):
            self._restored = {
                str(path): (
                    int(pos[0]),
                    int(pos[1]),
                    int(pos[2]),
                    *((int(pos[3]), int(pos[4])) if len(pos) > 4 else (0, 0)),
                )
                for path, pos in token.items()
            }

    def start(self, outlet: Outlet, checker: Checker) -> None:
        if self._files:  # a restart after a failure: continue after the last batch handed over
            self._restored.update(self.token())
            self._files = {}
        self.error = None
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(outlet, checker), name=f"source-{self.name}")
        self._thread.start()

    def failure(self) -> BaseException | None:
        return self.error

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
            self._rewritten(tracked)  # before reading: a refill past the offset must not be read from there
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
                log.info(
                    "file source %s: %s was %s; read the old file to its end (byte %d)%s",
                    self.name,
                    tracked.path,
                    "removed" if change == "gone" else "replaced by a new file",
                    tracked.offset,
                    "" if change == "gone" else ", now reading the new one from its start",
                )
                if change == "gone" or not self._open(tracked.path, 0):
                    continue
            progressed |= self._read(self._files[tracked.path], outlet, checker)
        return progressed

    def token(self) -> dict[str, FilePosition]:
        return {path: t.position(t.offset) for path, t in self._files.items()}

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
        candidates = [(path, saved)] if saved is not None else []
        candidates += [(old, pos) for old, pos in self._restored.items() if old != path]  # renamed while down
        for old_path, (dev, ino, offset, head_len, head_crc) in candidates:
            if (dev, ino) != identity:
                continue
            del self._restored[old_path]
            if st.st_size < offset:
                log.warning(
                    "file source %s: %s shrank while the collector was down; reading it from its start", self.name, path
                )
                return 0
            if not self._same_head(path, head_len, head_crc):
                log.warning(
                    "file source %s: %s was truncated and rewritten while the collector was down; "
                    "reading it from its start",
                    self.name,
                    path,
                )
                return 0
            if old_path != path:
                log.info(
                    "file source %s: %s was renamed to %s while the collector was down; resuming at byte %d",
                    self.name,
                    old_path,
                    path,
                    offset,
                )
            return offset
        if saved is not None:
            log.info(
                "file source %s: %s is a new file since the checkpoint; reading it from its start", self.name, path
            )
        return 0

    @staticmethod
    def _same_head(path: str, length: int, crc: int) -> bool:
        with open(path, "rb") as handle:
            return zlib.crc32(handle.read(length)) == crc

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
            tracked.csv = self._csv_decoder(path)
        if offset:
            self._skip_to(tracked, offset)
        self._files[path] = tracked
        return True

    def _skip_to(self, tracked: _Tracked, offset: int) -> None:
        """Count lines before `offset` (for line numbers) and learn a CSV header from the file's start."""
        tracked.handle.seek(0)
        head = tracked.handle.read(offset)
        tracked.lineno = head.count(b"\n")
        tracked.head = head[:FINGERPRINT_BYTES]
        if tracked.csv is not None:
            sections = self.mapper is not None and self.mapper.profile.section is not None
            for line in head.split(b"\n"):
                if line.strip():
                    try:  # the first non-blank line is the header (in a sectioned file: the last Header line)
                        list(tracked.csv.decode([line]))
                    except UserError as exc:
                        tracked.broken = str(exc)
                    if not sections:
                        break

    def _rotated(self, tracked: _Tracked) -> str | None:
        """None: same file, "replaced": a new file is at the path, "gone", or "truncated" (offset reset)."""
        try:
            st = os.stat(tracked.path)
        except FileNotFoundError:
            return "gone"
        if (st.st_dev, st.st_ino) != (tracked.dev, tracked.ino):
            return "replaced"
        return "truncated" if self._rewritten(tracked) else None

    def _rewritten(self, tracked: _Tracked) -> bool:
        """The open file got shorter than the offset, or its first bytes changed: reset it to byte 0."""
        size = os.fstat(tracked.handle.fileno()).st_size
        if size < tracked.offset:
            how = "truncated"
        elif tracked.head and os.pread(tracked.handle.fileno(), len(tracked.head), 0) != tracked.head:
            how = "truncated and refilled (its first bytes changed)"
        else:
            return False
        log.warning(
            "file source %s: %s was %s at byte %d; reading it again from its start",
            self.name,
            tracked.path,
            how,
            tracked.offset,
        )
        tracked.offset = tracked.lineno = 0
        tracked.head = b""
        if tracked.csv is not None:
            tracked.csv = self._csv_decoder(tracked.path)
            tracked.broken = None
        return True

    def _csv_decoder(self, path: str) -> CsvDecoder:
        return self.mapper.csv_decoder(path) if self.mapper is not None else CsvDecoder(path)

    def problem(self) -> str | None:
        broken = [t.broken for t in self._files.values() if t.broken]
        return f"not read: {broken[0]}" if broken else None

    def _read(self, tracked: _Tracked, outlet: Outlet, checker: Checker, final: bool = False) -> bool:
        progressed = False
        if tracked.broken:
            return False
        handle = tracked.handle
        while not self._stop.is_set():
            handle.seek(tracked.offset)
            data = handle.read(CHUNK)
            if not data:
                self._tell_no_fill(tracked)
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
        base = offset  # file offset of data[0]
        events: list[Event] = []
        start = 0
        limit = self.config.batch_lines
        while start < len(data):
            stop = data.find(b"\n", start)
            stop = len(data) if stop < 0 else stop + 1
            line = data[start:stop].strip()
            lineno += 1
            line_offset, offset = offset, offset + stop - start
            start = stop
            if line:
                try:
                    event = self._decode(tracked, line, lineno, checker)
                except UserError as exc:  # the header lacks mapped columns: stop before it, loudly, once
                    log.error("file source %s: %s; the file is not read further", self.name, exc)
                    checker.reject(RawRecord(f"{tracked.path}:{lineno}", line), str(exc))
                    tracked.broken = str(exc)
                    if events and outlet.put(Batch(self.name, events, token=self._token_with(tracked, line_offset))):
                        tracked.offset, tracked.lineno = line_offset, lineno - 1
                    return False
                if event is not None:
                    events.append(event)
            if len(events) >= limit or start >= len(data):
                known = len(tracked.head)  # the fingerprint covers bytes [0, known) of the file
                if known < FINGERPRINT_BYTES and base <= known < base + start:
                    tracked.head += data[known - base : min(start, FINGERPRINT_BYTES - base)]
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
        if self.mapper is not None:
            self.mapper.map_record(record)
        if record.skipped is not None:
            tracked.skipped += 1
            tracked.skip_reason = record.skipped
            return None
        tracked.records += 1
        result = checker.fill(record, time.time_ns())
        return None if isinstance(result, str) else result

    def _tell_no_fill(self, tracked: _Tracked) -> None:
        """Caught up with a file whose every record so far was skipped (a wrong map): say so, once."""
        if tracked.skipped and not tracked.records and not tracked.told_no_fill:
            tracked.told_no_fill = True
            log.error(
                "file source %s: %s gave no fill: its %d record(s) were skipped as not fills (e.g. %s); "
                "is %s the right map for it?",
                self.name,
                tracked.path,
                tracked.skipped,
                tracked.skip_reason,
                self.config.map,
            )

    def _token_with(self, tracked: _Tracked, offset: int) -> dict[str, FilePosition]:
        token = self.token()
        token[tracked.path] = tracked.position(offset)
        return token
