"""The duplicate-id memory of `run`, kept in an append-only journal instead of the checkpoint.

Pickling millions of remembered (account, fill_id) pairs at every checkpoint would stall the
engine for seconds. Instead each new pair is appended to a journal (one `account<TAB>fill_id`
line; both are free of control characters by the fill contract) and a checkpoint records only
the journal's generation and length. On restart the journal is cut back to that length — pairs
after it belong to events that will be processed again — and its last `capacity` pairs are
loaded. When a journal grows past twice `capacity` pairs, the remembered pairs (the journal's
suffix) are copied to a new generation. In memory only hashes and journal offsets are kept
(collector.idwindow: ≤ 32 bytes per id); a hash match is confirmed by reading the journal.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from collector.idwindow import IdWindow, id_line
from collector.model import Fill
from collector.quarantine import ensure_directory, quarantine

log = logging.getLogger(__name__)

Position = tuple[int, int]  # journal generation, length in bytes


class SeenIds:
    """Compaction writes a new generation; the old file stays valid until a checkpoint names the new one."""

    def __init__(self, directory: Path, capacity: int) -> None:
        self.dir = directory
        self.capacity = capacity
        self.generation = 0
        self.entries = 0  # pairs in the current journal
        self._window: IdWindow | None = None

    def _path(self, generation: int) -> Path:
        return self.dir / f"seen-ids.{generation}.log"

    def restore(self, position: Position | None) -> None:
        """Load the journal named by the checkpoint, cut to its length (None: no checkpoint, start empty).

        A damaged journal (unreadable lines, shorter than the checkpoint says, a directory in its
        place) is moved aside and rewritten from the pairs that could be read.
        """
        ensure_directory(self.dir, "nothing (it held no state)")
        self.generation, length = position if position is not None else (0, 0)
        path = self._path(self.generation)
        for other in self.dir.glob("seen-ids.*.log"):
            if other != path and other.is_file():
                other.unlink()
        raw, problem = b"", None
        if path.is_dir() or (os.path.lexists(path) and not path.is_file()):
            problem = "a directory (or other non-file) where the journal belongs"
        elif path.exists():
            with open(path, "rb") as handle:
                raw = handle.read(length)
            if len(raw) < length:
                problem = f"{len(raw)} bytes, shorter than the {length} the checkpoint recorded"
        elif length:
            problem = f"missing, though the checkpoint recorded {length} bytes"
        lines: list[bytes] = []
        bad = 0
        for line in raw.split(b"\n")[:-1] if raw.endswith(b"\n") else raw.split(b"\n"):
            try:
                account, tab, fill_id = line.decode("utf-8").partition("\t")
            except UnicodeDecodeError:
                account, tab = "", ""
            if tab and account and fill_id:
                lines.append(line + b"\n")
            elif line:
                bad += 1
        if bad:
            problem = f"{bad} unreadable line(s) (invalid UTF-8 or no tab)"
        if problem is not None:
            if os.path.lexists(path):
                quarantine(
                    path,
                    f"duplicate-id journal damaged: {problem}",
                    f"the unreadable entries; {len(lines)} fill ids were kept: a fill resent with a lost id is "
                    "processed again",
                    "check InfluxDB for doubled fill_ids (SELECT count(qty), count(distinct(fill_id)) FROM fills)",
                )
            else:
                log.warning("duplicate-id journal %s: %s; starting with the %d ids read", path, problem, len(lines))
        with open(path, "wb" if problem is not None else "r+b" if path.exists() else "wb") as handle:
            if problem is not None:
                handle.write(b"".join(lines))
            else:
                handle.truncate(length)
            size = handle.tell() if problem is not None else length
        journal = open(path, "a+b")  # noqa: SIM115 - closed in close()
        self._window = IdWindow(self.capacity, journal, size)
        self._window.load(lines)
        self.entries = len(lines)

    def add(self, account: str, fill_id: str) -> bool:
        """True when the pair is new (and journaled), False for a duplicate."""
        assert self._window is not None
        new = self._window.add(id_line(account, fill_id))
        self.entries += new
        return new

    def add_many(self, fills: Sequence[Fill]) -> list[bool]:
        """`add` for each fill, in order, checked at once."""
        assert self._window is not None
        new = self._window.add_many([f"{f.account}\t{f.fill_id}\n".encode() for f in fills])
        self.entries += sum(new)
        return new

    def durable_position(self) -> Position:
        """Flush and fsync the journal; the position goes into the checkpoint. Compacts when due."""
        window = self._window
        assert window is not None
        if self.entries > 2 * self.capacity:
            old = window.journal
            self.generation += 1
            window.move_to(open(self._path(self.generation), "w+b"))  # noqa: SIM115 - closed in close()
            old.close()
            self.entries = len(window)
        window.journal.flush()
        os.fsync(window.journal.fileno())
        return self.generation, window.length

    def close(self) -> None:
        if self._window is not None:
            self._window.journal.close()
            self._window = None
