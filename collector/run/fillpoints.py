"""`fills` points written from their own thread, so the engine thread never waits for InfluxDB's fill keys.

Giving booked fills their timestamps reads which slots InfluxDB already holds (collector/store/
fillkeys.py): a query per flush, tens of milliseconds, and more under load. The perf points that
make a fill's effect visible do not depend on it, so the engine thread hands the fills over and
goes on. It waits (`wait`) only where it needs the fill keys itself or everything written so far:
before a revision (which reads and deletes stored fills) and before a checkpoint (which covers
only durable points and carries the timestamp memory). Between those, this thread alone uses the
timestamp memory and the reader.
"""

from __future__ import annotations

import queue
import threading

from collector.model import Fill
from collector.store.fillkeys import FillKeys
from collector.store.lineproto import fill_line
from collector.store.writer import Writer

Booked = list[tuple[Fill, float]]  # fills and their realized PnL, in booking order


class FillPoints:
    def __init__(self, fill_keys: FillKeys, writer: Writer) -> None:
        self.fill_keys, self.writer = fill_keys, writer
        self._queue: queue.Queue[Booked | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fill-points", daemon=True)
        self._thread.start()

    def submit(self, booked: Booked) -> None:
        """Queue the fills' points (the list is taken over); raises an error the thread met earlier."""
        self._raise()
        if booked:
            self._queue.put(booked)

    def wait(self) -> None:
        """Until every submitted fill's points are handed to the writer (not yet durable: writer.flush)."""
        self._queue.join()
        self._raise()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (booked := self._queue.get()) is not None:
            try:
                if self._error is None:
                    keys = self.fill_keys.assign([fill for fill, _ in booked])
                    self.writer.write_lines([fill_line(f, ts, pnl) for (f, pnl), ts in zip(booked, keys, strict=True)])
            except BaseException as exc:  # e.g. the writer's fatal error: the engine thread raises it
                self._error = exc
            finally:
                self._queue.task_done()
        self._queue.task_done()
