"""`stratmon aggregate`: `records.*` → strategy, account and portfolio series (exact) → InfluxDB and the alert rules.

Reads every partition's records in stream order, applies what is complete (up to the lowest watermark,
collector/bus/aggregator.py), writes the changed aggregates' perf points and runs the strategy, account
and portfolio alert rules as `run` does: each applied stretch is a batch (its fills and round trips through
`AlertEngine.on_batch`), then the changed series (`on_tick`); transitions become `alerts` points and go to
the notifiers. Book-level rules run in the workers (they hold the book series). It also runs `run`'s
scheduled jobs (rollups, optimizer: they read perf points back from InfluxDB). Its checkpoint (under the
`aggregator` lease) is the engine state + alert states + the last global seq applied + where to re-read
the stream: before the oldest records message not wholly applied.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable

from collector.alerts.evaluator import AlertEngine, AlertEvent
from collector.alerts.notify.dispatcher import Dispatcher
from collector.bus.aggregator import Aggregates
from collector.bus.base import Bus, Lease
from collector.bus.records import RECORDS_DECODER
from collector.config import Settings
from collector.run.bus_common import alerting_health, bus_config, holding, open_bus, restore, save
from collector.run.checkpoint import Checkpoint
from collector.run.collector import alert_line, perf_line, start_alerting
from collector.run.state_data import alerts_data
from collector.store.connect import open_writer
from collector.store.lineproto import point
from collector.store.writer import Writer

log = logging.getLogger(__name__)
NAME = "aggregator"
# the rule levels evaluated here, the aggregator's series (book rules run in the workers, which hold the books)
LEVELS = ("strategy", "account", "portfolio")


class Aggregator:
    def __init__(self, settings: Settings, bus: Bus, writer: Writer, owner: str) -> None:
        self.settings, self.bus, self.writer, self.owner = settings, bus, writer, owner
        self.aggregates: Aggregates | None = None
        self.alerts: AlertEngine | None = None
        self.dispatcher: Dispatcher | None = None

    @property
    def applied(self) -> int:
        return -1 if self.aggregates is None else self.aggregates.applied

    async def run(self) -> None:
        config = bus_config(self.settings)
        async with holding(self.bus, NAME, self.owner, config.lease_ttl) as lease:
            state = await restore(self.bus, NAME, self.settings)
            applied = int(state.tokens.get("applied", -1))
            self.aggregates = aggregates = Aggregates(
                config.partitions, state.engine, applied, [applied] * config.partitions
            )
            if (alerting := start_alerting(self.settings, state.engine, state.alerts, LEVELS)) is not None:
                self.alerts, self.dispatcher = alerting
            position = last = int(state.tokens.get("position", 0))
            subjects = [f"records.{p}" for p in range(config.partitions)]
            saved_at = time.monotonic()
            between = True  # not inside an apply: the state matches `last` (a checkpoint may be taken)
            try:
                async for message in self.bus.read(subjects, position):
                    between = False
                    # off the event loop (the kernel releases the GIL): the lease renewals must keep running
                    await asyncio.to_thread(self._apply, message.data, message.seq, state)
                    last, between = message.seq, True
                    if time.monotonic() - saved_at >= self.settings.run.snapshot_interval:
                        await self._checkpoint(state, aggregates.resume_position(last), lease)
                        saved_at = time.monotonic()
            except asyncio.CancelledError:  # stopped: keep what is done (mid-apply, the last checkpoint replays it)
                if between:
                    await self._checkpoint(state, aggregates.resume_position(last), lease)
                raise

    def _apply(self, data: bytes, position: int, state: Checkpoint) -> None:
        assert self.aggregates is not None
        self.aggregates.add(RECORDS_DECODER.decode(data), position)
        engine, alerts = state.engine, self.alerts
        clock = engine.clock_ns  # before the stretch, as `on_batch` wants it
        applied = self.aggregates.apply()
        if alerts is not None and applied.batch is not None and applied.records:
            self._emit(alerts.on_batch([], applied.batch, clock))
        changed = {s for s in engine.take_changed() if s.level != "book"}
        if not changed:
            return
        clock = engine.clock_ns
        self.writer.write_lines([perf_line(engine.row(s), clock) for s in changed])
        state.counters.perf_points += len(changed)
        if alerts is not None:
            self._emit(alerts.on_tick(changed, clock))

    def _emit(self, events: list[AlertEvent]) -> None:
        """Alert transitions: an `alerts` point each (durable at once), the notifiers (as `run` does)."""
        for event in events:
            self.writer.write(alert_line(event))
            if self.dispatcher is not None:
                self.dispatcher.submit(event)
        if events:
            self.writer.flush()

    async def _checkpoint(self, state: Checkpoint, position: int, lease: Lease) -> None:
        assert self.aggregates is not None
        await asyncio.to_thread(self.writer.flush)
        state.tokens = {"position": position, "applied": self.aggregates.applied}
        if self.alerts is not None:
            state.alerts = alerts_data(self.alerts.export_state())
        await save(self.bus, NAME, state, lease)
        fields = {"applied": self.aggregates.applied, "watermark_delay": self._delay()} | alerting_health(
            self.alerts, self.dispatcher
        )
        self.writer.write(
            point("collector", {"instance": self.owner, "partition": "aggregate"}, fields, time.time_ns())
        )

    def _delay(self) -> int:
        """Global seqs between the highest watermark and the lowest one (what waits for the slowest partition)."""
        assert self.aggregates is not None
        marks = self.aggregates.watermarks
        return max(marks) - min(marks)


async def run_aggregator(
    settings: Settings, stopping: asyncio.Event, started: Callable[[Aggregator], None] = lambda _: None
) -> Aggregator:
    bus = await open_bus(settings)
    writer = open_writer(settings, block_when_full=True)
    aggregator = Aggregator(settings, bus, writer, f"{settings.run.instance or socket.gethostname()}:aggregate")
    from collector.jobs.scheduler import start_scheduler  # APScheduler: only where jobs run

    scheduler = start_scheduler(settings, writer) if settings.jobs.enabled else None
    task = asyncio.create_task(aggregator.run())
    started(aggregator)
    waiter = asyncio.create_task(stopping.wait())
    try:
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
    finally:
        task.cancel()
        waiter.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if scheduler is not None:
            await asyncio.to_thread(scheduler.shutdown, wait=True)
        if aggregator.dispatcher is not None:
            await asyncio.to_thread(aggregator.dispatcher.close)
        await asyncio.to_thread(writer.close)
        await bus.close()
    return aggregator
