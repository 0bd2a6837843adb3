"""`stratmon worker --partitions A-B`: each partition's books from `fills.<p>` → InfluxDB and `records.<p>`.

Per partition: take its lease, restore its checkpoint (engine, watermark, seen fill ids, timestamp memory,
book-level alert states and the stream position), read `fills.<p>` after that position, book each part
(collector/bus/worker.py), write its fills and the changed books' perf points, run the book-level alert
rules as `run` does (the part is a batch: `on_batch`, then `on_tick` on the changed books; transitions →
`alerts` points and the notifiers), publish its records (msg id = partition and watermark:
a replay after a crash is dropped by the broker, or skipped by the aggregator), and checkpoint under the
lease once what it covers is durable in InfluxDB. A crash replays from the checkpoint: the same fills get
the same timestamps (the checkpointed timestamp memory), so their points overwrite, never double.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from collector.alerts.evaluator import AlertEngine, AlertEvent
from collector.alerts.notify.dispatcher import Dispatcher
from collector.bus.base import Bus, Lease
from collector.bus.records import PART_DECODER, PART_ENCODER
from collector.bus.worker import Booked, PartitionBooks, SeenFills
from collector.config import Settings
from collector.engine.partition import BookEngine
from collector.run.bus_common import alerting_health, bus_config, holding, open_bus, restore, save
from collector.run.checkpoint import Checkpoint
from collector.run.collector import alert_line, perf_line, start_alerting
from collector.run.state_data import alerts_data
from collector.store.connect import open_writer
from collector.store.fillkeys import FillKeys
from collector.store.lineproto import fill_line, point
from collector.store.writer import Writer

log = logging.getLogger(__name__)
MIN_WINDOW = 1000  # fill ids a partition remembers at least (ingest.dedupe_window's minimum)


class PartitionWorker:
    """One partition's books, fed from the bus; `watermark` = the last global seq booked (tests wait on it)."""

    def __init__(self, settings: Settings, bus: Bus, writer: Writer, partition: int, owner: str) -> None:
        self.settings, self.bus, self.writer = settings, bus, writer
        self.partition, self.owner = partition, owner
        self.name = f"partition-{partition}"
        self.books: PartitionBooks | None = None
        self.alerts: AlertEngine | None = None  # the book-level rules (the aggregator runs the others)
        self.dispatcher: Dispatcher | None = None
        self.lag = 0

    @property
    def watermark(self) -> int:
        return -1 if self.books is None else self.books.watermark

    async def run(self) -> None:
        config = bus_config(self.settings)
        async with holding(self.bus, self.name, self.owner, config.lease_ttl) as lease:
            state = await restore(self.bus, self.name, self.settings, BookEngine)
            state.engine = BookEngine.adopt(state.engine)
            tokens = state.tokens
            # a partition gets ~1/P of the fills: dedupe_window/P of them span the router's window (and the
            # partitions together take the memory of `run`'s one window)
            seen = SeenFills(max(MIN_WINDOW, self.settings.ingest.dedupe_window // config.partitions))
            seen.load(tokens.get("seen", ""))
            self.books = books = PartitionBooks(self.partition, state.engine, tokens.get("watermark", -1), seen)
            if (alerting := start_alerting(self.settings, state.engine, state.alerts, ("book",))) is not None:
                self.alerts, self.dispatcher = alerting
            keys = FillKeys(state.stamps, None)
            position = int(tokens.get("position", 0))
            saved_at = time.monotonic()
            between = True  # not inside a part: the state matches `position` (a checkpoint may be taken)
            try:
                async for message in self.bus.read(f"fills.{self.partition}", position):
                    between = False
                    # off the event loop (the kernel releases the GIL): the lease renewals must keep running
                    out = await asyncio.to_thread(self._book, books, message.data, keys, state)
                    if out is not None:
                        await self.bus.publish(f"records.{self.partition}", *out)
                    position, self.lag, between = message.seq, message.pending, True
                    if time.monotonic() - saved_at >= self.settings.run.snapshot_interval:
                        await self._checkpoint(state, position, lease)
                        saved_at = time.monotonic()
            except asyncio.CancelledError:  # stopped: keep what is done (mid-part, the last checkpoint replays it)
                if between:
                    await self._checkpoint(state, position, lease)
                raise

    def _book(self, books: PartitionBooks, data: bytes, keys: FillKeys, state: Checkpoint) -> tuple[bytes, str] | None:
        """Book a part, hand its points to the writer; (records payload, msg id), or None for a replayed part."""
        clock = state.engine.clock_ns  # before the part, as `on_batch` wants it
        booked = books.on_part(PART_DECODER.decode(data))
        if booked is None:
            return None
        self._write(booked, keys, state, clock)
        return PART_ENCODER.encode(booked.records), f"r{self.partition}-{booked.records.watermark}"

    def _write(self, booked: Booked, keys: FillKeys, state: Checkpoint, before: int) -> None:
        """Fill and changed books' perf points; the book-level rules (`before`: the engine clock before)."""
        engine, alerts = state.engine, self.alerts
        fills = [fill for fill, _ in booked.fills]
        stamps = keys.assign(fills)
        lines = [fill_line(fill, ts, pnl) for (fill, pnl), ts in zip(booked.fills, stamps, strict=True)]
        clock = engine.clock_ns
        changed = {s for s in engine.take_changed() if s.level == "book"}
        lines += [perf_line(engine.row(s), clock) for s in changed]
        events: list[AlertEvent] = []
        if alerts is not None:
            events = alerts.on_batch(fills, booked.batch, before) + alerts.on_tick(changed, clock)
            lines += [alert_line(event) for event in events]
            if self.dispatcher is not None:
                for event in events:
                    self.dispatcher.submit(event)
        self.writer.write_lines(lines)
        if events:
            self.writer.flush()  # an alert's point is durable at once, as in `run`
        state.counters.fills_in += len(booked.fills)

    async def _checkpoint(self, state: Checkpoint, position: int, lease: Lease) -> None:
        """Everything booked durable in InfluxDB, then the state under the lease (refused once fenced)."""
        assert self.books is not None
        await asyncio.to_thread(self.writer.flush)
        tokens: dict[str, Any] = {
            "position": position,
            "watermark": self.books.watermark,
            "seen": self.books.seen.text(),
        }
        state.tokens = tokens
        if self.alerts is not None:
            state.alerts = alerts_data(self.alerts.export_state())
        await save(self.bus, self.name, state, lease)
        fields = {
            "fills_in": state.counters.fills_in,
            "consumer_lag": self.lag,
            "watermark": self.books.watermark,
        } | alerting_health(self.alerts, self.dispatcher)
        self.writer.write(
            point("collector", {"instance": self.owner, "partition": str(self.partition)}, fields, time.time_ns())
        )


def parse_partitions(text: str, partitions: int) -> range:
    """ "A-B" or "A" → range(A, B + 1), within 0 … partitions − 1."""
    first, _, last = text.partition("-")
    try:
        span = range(int(first), int(last or first) + 1)
    except ValueError:
        raise ValueError(f"--partitions {text!r}: expected A-B or A (partition numbers)") from None
    if not span or span.start < 0 or span.stop > partitions:
        raise ValueError(f"--partitions {text!r}: expected partitions within 0-{partitions - 1} (bus.partitions)")
    return span


async def run_workers(
    settings: Settings,
    span: range,
    stopping: asyncio.Event,
    started: Callable[[list[PartitionWorker]], None] = lambda _: None,
) -> list[PartitionWorker]:
    """Serve the partitions in `span` until `stopping` is set (each checkpoints on the way out)."""
    bus = await open_bus(settings)
    writer = open_writer(settings, block_when_full=True)
    owner = f"{settings.run.instance or socket.gethostname()}:{span.start}-{span.stop - 1}"
    workers = [PartitionWorker(settings, bus, writer, p, owner) for p in span]
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    started(workers)
    waiter = asyncio.create_task(stopping.wait())
    try:
        done, _ = await asyncio.wait([*tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
        for task in done - {waiter}:
            task.result()  # a partition that ended on its own failed (lease lost, bus down): the process fails
    finally:
        for task in [*tasks, waiter]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for worker in workers:
            if worker.dispatcher is not None:
                await asyncio.to_thread(worker.dispatcher.close)
        await asyncio.to_thread(writer.close)
        await bus.close()
    return workers
