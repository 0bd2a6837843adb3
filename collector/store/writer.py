"""Batching writer: lines are grouped by size and age, sent by one background thread, spooled on outage.

Memory stays bounded: at most `max_pending` batches wait for the sender (producers block
beyond that: backpressure), and everything the server cannot take right now goes to disk.

When neither InfluxDB nor the spool can take a batch (spool at `max_bytes`, or the disk full),
a writer with `block_when_full` (the collector) keeps the batch and retries with backoff: the
producers block, and with them the sources (the HTTP intake answers 503, the file tail and the
simulator wait), until InfluxDB answers or space frees up. Nothing is dropped; `problem` says
why it waits. `abandon()` (shutdown) gives up waiting with a WriteError, so the caller does
not checkpoint past points that were never made durable. Without it (`stratmon ingest`) a
full spool fails the run with SpoolFullError.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass

from collector.store.errors import SpoolFullError, WriteError
from collector.store.spool import Spool
from collector.store.transport import Transport

log = logging.getLogger(__name__)

_STOP = None
Batch = tuple[bytes, int]


@dataclass
class WriterStats:
    written: int = 0  # points the server acknowledged on first try
    spooled: int = 0  # points that went to the disk spool
    replayed: int = 0  # spooled points later acknowledged
    failed: int = 0  # points the server rejected as bad data (never retried)
    write_errors: int = 0  # failed requests of any kind

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Writer:
    def __init__(
        self,
        transport: Transport,
        *,
        batch_size: int = 5000,
        flush_interval: float = 1.0,
        spool: Spool | None = None,
        drain_timeout: float = 30.0,
        max_pending: int = 4,
        max_backoff: float = 10.0,
        block_when_full: bool = False,
    ) -> None:
        self.transport = transport
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.spool = spool
        self.drain_timeout = drain_timeout
        self.max_backoff = max_backoff
        self.block_when_full = block_when_full
        self.problem: str | None = None  # why the writer is holding its producers back, if it is
        self._abandon = threading.Event()
        self.stats = WriterStats()
        self._lines: list[str] = []
        self._started = 0.0
        self._lock = threading.Lock()
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=max_pending)
        self._down = False
        self._down_since = 0.0
        self._next_probe = 0.0
        self._backoff = 0.0
        self._fatal: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="influx-writer", daemon=True)
        self._thread.start()

    # producer side -------------------------------------------------------------------------
    def write(self, line: str) -> None:
        batch = None
        with self._lock:
            if not self._lines:
                self._started = time.monotonic()
            self._lines.append(line)
            if len(self._lines) >= self.batch_size:
                batch = self._take_locked()
        if batch is not None:
            self._submit(batch)

    def write_lines(self, lines: list[str]) -> None:
        """Many lines under one lock: whole batches are cut from them and handed to the sender."""
        size = self.batch_size
        with self._lock:
            if not self._lines:
                self._started = time.monotonic()
            pending = self._lines
            pending.extend(lines)
            full = len(pending) - len(pending) % size
            chunks = [pending[i : i + size] for i in range(0, full, size)]
            self._lines = pending[full:]
        for chunk in chunks:
            self._submit(("\n".join(chunk).encode(), len(chunk)))

    def flush(self) -> None:
        """Hand over everything buffered and wait until the sender has written or spooled it."""
        with self._lock:
            batch = self._take_locked() if self._lines else None
        if batch is not None:
            self._submit(batch)
        self._queue.join()
        self._raise_fatal()

    def close(self) -> None:
        """Flush, then keep replaying the spool for up to `drain_timeout` seconds; leftovers stay on disk."""
        try:
            self.flush()
        finally:
            self._queue.put(_STOP)
            self._thread.join()
        deadline = time.monotonic() + self.drain_timeout
        while self.spooled_batches() and time.monotonic() < deadline:
            self._next_probe = 0.0
            if self._replay():
                break
            time.sleep(min(self._backoff or 0.5, max(0.0, deadline - time.monotonic())))
        self.transport.close()
        self._raise_fatal()

    def spooled_batches(self) -> int:
        """Batches still waiting on disk."""
        return len(self.spool) if self.spool is not None else 0

    def _take_locked(self) -> Batch:
        lines, self._lines = self._lines, []
        return ("\n".join(lines).encode(), len(lines))

    def _submit(self, batch: Batch) -> None:
        self._raise_fatal()
        self._queue.put(batch)

    def _raise_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    # sender side ---------------------------------------------------------------------------
    def _run(self) -> None:
        tick = min(self.flush_interval, 0.25)
        while True:
            try:
                item = self._queue.get(timeout=tick)
            except queue.Empty:
                self._on_idle()
                continue
            try:
                if item is _STOP:
                    return
                if self._fatal is None:
                    self._deliver(*item)
            except BaseException as exc:  # keep the thread alive; the producer re-raises it
                self._fatal = exc
            finally:
                self._queue.task_done()

    def _on_idle(self) -> None:
        batch = None
        with self._lock:
            if self._lines and time.monotonic() - self._started >= self.flush_interval:
                batch = self._take_locked()
        try:
            if batch is not None:
                self._deliver(*batch)
            elif self.spool is not None and len(self.spool):
                self._replay()
        except BaseException as exc:
            self._fatal = exc

    def _deliver(self, body: bytes, count: int) -> None:
        if self.spool is not None and len(self.spool) and not self._replay():
            self._to_spool(body, count)  # keep order: older spooled points go first
            return
        while True:
            try:
                self.transport.send(body)
            except WriteError as exc:
                self.stats.write_errors += 1
                if not exc.retryable:
                    self.stats.failed += count
                    sample = body[: body.find(b"\n")] if b"\n" in body else body
                    log.error("InfluxDB rejected %d points (%s); first: %s", count, exc, sample[:300])
                    return
                self._mark_down(exc)
                if self.spool is not None:
                    self._to_spool(body, count)
                    return
                if time.monotonic() - self._down_since > self.drain_timeout:
                    raise WriteError(
                        f"InfluxDB unavailable for {self.drain_timeout:g} s and the spool is disabled: {exc}",
                        retryable=False,
                    ) from None
                time.sleep(self._backoff)
                continue
            self._mark_up()
            self.stats.written += count
            return

    def abandon(self) -> None:
        """Stop waiting for room (shutdown): a batch held for a full spool fails instead."""
        self._abandon.set()

    def _to_spool(self, body: bytes, count: int) -> None:
        assert self.spool is not None
        backoff = 0.25
        while True:
            try:
                self.spool.append(body)
                break
            except SpoolFullError as exc:
                if not self.block_when_full:
                    raise  # the run cannot go on without losing data
                if self.problem is None:
                    log.error("%s; holding %d points and waiting (sources are paused)", exc, count)
                self.problem = str(exc)
            if self._abandon.wait(backoff):
                raise WriteError(f"stopped while {count} points waited for room: {self.problem}", retryable=False)
            backoff = min(backoff * 2, self.max_backoff)
            self._next_probe = 0.0
            if self._replay():  # InfluxDB is back (or the spool drained): send this batch in order
                try:
                    self.transport.send(body)
                except WriteError:
                    continue
                self._mark_up()
                self.stats.written += count
                self._resolved()
                return
        self.stats.spooled += count
        self._resolved()

    def _resolved(self) -> None:
        if self.problem is not None:
            log.info("the spool has room again; writing resumed")
            self.problem = None

    def _replay(self) -> bool:
        """Send spooled batches oldest first; False while the server still refuses."""
        assert self.spool is not None
        if self._down and time.monotonic() < self._next_probe:
            return False
        while (oldest := self.spool.oldest()) is not None:
            path, body = oldest
            count = body.count(b"\n") + 1
            try:
                self.transport.send(body)
            except WriteError as exc:
                self.stats.write_errors += 1
                if exc.retryable:
                    self._mark_down(exc)
                    return False
                self.stats.failed += count
                log.error("InfluxDB rejected %d spooled points (%s); dropping %s", count, exc, path.name)
            else:
                self.stats.replayed += count
                self._mark_up()
            self.spool.remove(path)
        return True

    def _mark_down(self, exc: WriteError) -> None:
        if not self._down:
            log.warning("InfluxDB unavailable (%s); spooling to %s", exc, getattr(self.spool, "dir", "memory"))
            self._down = True
            self._down_since = time.monotonic()
            self._backoff = 0.25
        else:
            self._backoff = min(self._backoff * 2, self.max_backoff)
        self._next_probe = time.monotonic() + self._backoff

    def _mark_up(self) -> None:
        if self._down:
            log.info("InfluxDB is back; replaying the spool")
        self._down = False
        self._backoff = 0.0
