"""The collector: sources → bounded queue → engine (this thread) → writer, with checkpoints and jobs.

One thread owns the engine, so metric state needs no locks. Whenever it is idle (at most every
`run.flush_min_interval`, at least every `run.flush_interval`) it writes `perf` points for the
series that fills were booked into since the last flush, for a share of the series only a mark
revalued (each within about `run.flush_interval`: see `_flush`), and for any other series once
`run.heartbeat` of event time has passed since its last point, and waits until the writer has
made them durable; the wait is what end-to-end latency measures (batch receipt → durable perf
point). `fills` points go through their own thread (collector/run/fillpoints.py): their keys
need a read of InfluxDB.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

from collector.alerts.evaluator import AlertEngine, AlertEvent
from collector.alerts.notify.dispatcher import Dispatcher, build_notifiers
from collector.alerts.rules import load_rules
from collector.config import Settings
from collector.engine.daily import DAY_NS
from collector.engine.engine import Engine
from collector.engine.revise import BookLog, RevisionError
from collector.engine.series import Series
from collector.errors import RunFailed, UserError
from collector.model import Fill, FillValidator, Mark, event_json
from collector.quarantine import ensure_directory, quarantine
from collector.revisions import apply_revision
from collector.run import checkpoint, identity, state_data
from collector.run.checkpoint import Checkpoint, Counters, DamagedCheckpoint
from collector.run.fillpoints import FillPoints
from collector.run.health import LatencyWindow
from collector.run.heartbeat import Heartbeat
from collector.run.seen import SeenIds
from collector.run.state_data import alerts_data, alerts_from
from collector.sources.base import Batch, Checker, Outlet, Source
from collector.sources.deadletter import DeadLetter
from collector.sources.records import RawRecord
from collector.sources.registry import build_sources
from collector.store.connect import open_reader, open_writer
from collector.store.errors import SpoolFullError, WriteError
from collector.store.fillkeys import FillKeys, StoredKeys
from collector.store.lineproto import UniqueTimestamps, point
from collector.store.reader import Reader
from collector.store.writer import Writer

log = logging.getLogger(__name__)

TAGS = ("level", "account", "strategy")
RESTART_BACKOFF_MAX = 60.0
CHECKPOINT_DUTY = 9.0  # wait at least this many times the last checkpoint's duration before the next
FLUSH_DUTY = 1.0  # ... and the last flush's: waiting for durable writes takes at most ~half the engine's time


def perf_line(row: dict[str, Any], ts_ns: int) -> str:
    """A `perf` point from an engine row (undefined metrics are left out): `point`'s line, written directly
    (a few times faster; a flush may write one per series). Nothing to escape: the tags passed the fill
    contract's charset, the field names are the engine's identifiers, the values Python ints and floats."""
    fields = ",".join(
        [f"{k}={v}i" if type(v) is int else f"{k}={v!r}" for k, v in row.items() if v is not None and k not in TAGS]
    )
    return f"perf,account={row['account']},level={row['level']},strategy={row['strategy']} {fields} {ts_ns}"


def alert_line(event: AlertEvent) -> str:
    """The `alerts` point of an alert transition."""
    fields: dict[str, Any] = {
        "value": event.value,
        "threshold": event.threshold,
        "active": 1 if event.state == "firing" else 0,
        "message": event.message,
        "latency_ms": event.latency_ms,
    }
    return point("alerts", event.tags(), fields, event.ts_ns)


def start_alerting(
    settings: Settings, engine: Engine, saved: list[Any], levels: Collection[str] | None = None
) -> tuple[AlertEngine, Dispatcher] | None:
    """The alert rules over `engine` (continuing from the checkpointed states `saved`) and their notifiers;
    None when alerts are off. `levels`: the rule levels evaluated here, None = all (bus mode splits them)."""
    if not settings.alerts.enabled:
        return None
    if not Path(settings.alerts.rules).is_file():
        raise UserError(
            f"alerts.rules: {settings.alerts.rules} not found (relative to {Path.cwd()}); point alerts.rules "
            "at your rules file or set alerts.enabled: false"
        )
    rules = load_rules(settings.alerts.rules)
    if levels is not None:
        rules = rules.model_copy(update={"rules": [rule for rule in rules.rules if rule.level in levels]})
    alerts = AlertEngine(rules, engine)
    alerts.adopt(alerts_from(saved, rules))
    notifiers, problems = build_notifiers(rules)
    for problem in problems:
        log.warning("%s", problem)
    return alerts, Dispatcher(rules, notifiers)


class _Saving(threading.Thread):
    """Writes one checkpoint snapshot (encode, checksum, fsync, rename) off the engine thread, then fits its
    buffers to the state's size for the next copy (checkpoint.reserve). write=False: only the latter (at start)."""

    def __init__(
        self, path: Path, snapshot: checkpoint.Snapshot, state: Checkpoint, started: float, write: bool = True
    ) -> None:
        super().__init__(name="checkpoint", daemon=True)
        self.path, self.snapshot, self.state, self.started, self.write = path, snapshot, state, started, write
        self.size, self.ms = 0, 0.0
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            if self.write:
                self.size = checkpoint.save(self.path, self.snapshot)
        except Exception as exc:  # reported by the engine thread; the previous checkpoint stays
            self.error = exc
        self.ms = (time.perf_counter() - self.started) * 1000
        checkpoint.reserve(self.snapshot, self.state)


class Collector:
    def __init__(self, settings: Settings, sources: list[Source] | None = None) -> None:
        self.settings = settings
        run = settings.run
        self.instance = run.instance or socket.gethostname()
        self.stopping = threading.Event()
        self.outlet = Outlet(run.queue_batches, self.stopping)
        self.outlet.problem = self.problem
        self.dead_letter = DeadLetter(settings.ingest.dead_letter)
        self.checker = Checker(FillValidator(settings.ingest.max_future_skew), self.dead_letter)
        self.sources = sources if sources is not None else build_sources(settings.sources)
        if Path(settings.state_dir).exists() and not Path(settings.state_dir).is_dir():
            raise UserError(f"state_dir: {settings.state_dir} is a file; expected a directory (or a path to create)")
        self.snapshot_path = Path(settings.state_dir) / "collector" / "checkpoint.json"
        ensure_directory(self.snapshot_path.parent, "nothing (it held no state)")
        identity.claim(self.snapshot_path.parent, identity.Identity.of(settings))  # never another config's state
        for source in self.sources:
            source.use_state_dir(self.snapshot_path.parent)
        self.state = self._restore()
        self.seen = SeenIds(self.snapshot_path.parent, settings.ingest.dedupe_window)
        self.seen.restore(self.state.seen_position)
        self.checkpoint_ms = 0.0  # the last checkpoint's copy + encode + write
        self.checkpoint_block_ms = 0.0  # the part of it the engine thread waited for (the copy)
        self._saving: _Saving | None = None
        self._written: checkpoint.Snapshot | None = None
        self.alerts: AlertEngine | None = None
        self.dispatcher: Dispatcher | None = None
        if (alerting := start_alerting(settings, self.engine, self.state.alerts)) is not None:
            self.alerts, self.dispatcher = alerting
        self.alert_latency = LatencyWindow()
        self._anchor = (self.engine.clock_ns, time.monotonic_ns())  # event clock, and when it last moved
        self._last_health: tuple[int, int] = (0, 0)  # fills_in, rejected at the previous report
        self.latency = LatencyWindow()
        self.on_flush: list[Callable[[Collector], None]] = []  # e.g. the live view; runs in the engine thread
        self.heartbeat = Heartbeat(run.heartbeat)
        self.writer: Writer | None = None
        self.fill_keys: FillKeys | None = None
        self.fill_points: FillPoints | None = None
        self._booked_books: set[tuple[str, str]] = set()  # (account, strategy) of fills booked since the last flush
        self._revalued: dict[Series, float] = {}  # changed (by a mark) but not written yet → since when (monotonic)
        self._flushed = time.monotonic()  # when the last flush began
        self._unwritten: list[tuple[Fill, float]] = []  # booked fills (and realized PnL) whose points await a flush
        self._closed_days: set[Series] = set()  # changed series already written at a day's end, for the next tick
        self.reader: Reader | None = None
        self.started_at = time.monotonic()
        self.error: BaseException | None = None
        self._pending: list[tuple[int, int]] = []  # (received_ns, fills) since the last durable flush
        self._done = threading.Event()
        self.checkpoint_problem: str | None = None
        self._restarts: dict[str, tuple[float, str]] = {}  # failed source → (restart due, why)
        self._backoff: dict[str, tuple[float, float]] = {}  # source → (last backoff s, when it last failed)

    @property
    def engine(self) -> Engine:
        return self.state.engine

    @property
    def counters(self) -> Counters:
        return self.state.counters

    # ---- lifecycle ----------------------------------------------------------------------------
    def _restore(self) -> Checkpoint:
        capital, stamps = self.settings.capital, self.settings.run.timestamp_memory
        window = self.settings.ingest.bust_window
        try:  # capital may have been edited since the checkpoint: the current one applies
            saved = checkpoint.load(self.snapshot_path, capital.accounts, capital.default, stamps)
        except DamagedCheckpoint as exc:
            quarantine(
                self.snapshot_path,
                f"checkpoint unusable: {exc}",
                "the engine state (positions, metrics) and source positions: sources start over from their "
                "beginning and duplicates already stored are dropped by fill id",
                "nothing to do for a file source (it is re-read); compare positions with the desk's own records",
            )
            saved = None
        if saved is None:
            engine = Engine(capital.accounts, capital.default, self.settings.metrics.day_basis, window)
            engine.sample = self.settings.metrics.sample()
            return Checkpoint(engine=engine, stamps=UniqueTimestamps(stamps))
        saved.engine.day_basis = self.settings.metrics.day_basis  # like capital: the current config applies
        saved.engine.sample = self.settings.metrics.sample()
        saved.engine.log = BookLog(window)  # not checkpointed: fills from before the restart cannot be busted
        log.info("continuing from checkpoint %s (%d fills so far)", self.snapshot_path, saved.counters.fills_in)
        return saved

    def stop(self) -> None:
        """Ask the run to end (signal handlers call this): drain, flush, checkpoint, return."""
        self.stopping.set()
        if self.writer is not None:
            self.writer.abandon()  # only matters while it holds points for a full spool

    def wait_stopped(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def problem(self) -> str | None:
        """Why the collector is not ready to take input, or None."""
        if self.stopping.is_set():
            return "stopping"
        if self.writer is None:
            return "starting"
        if self.error is not None:
            return f"failed: {self.error}"
        if self.writer.problem is not None:
            return f"writes paused: {self.writer.problem}"
        if self.checkpoint_problem is not None:
            return self.checkpoint_problem
        for name, (_, why) in list(self._restarts.items()):  # read from the intake thread
            return f"source {name} failed ({why}); restarting with backoff"
        for source in self.sources:
            if (reason := source.problem()) is not None:
                return f"source {source.name}: {reason}"
        return None

    def _supervise(self, now: float) -> None:
        """Restart a source whose thread died, after a backoff that doubles per failure (1 s … 60 s).

        The backoff starts again at 1 s once a source has run for RESTART_BACKOFF_MAX without failing.
        """
        for source in self.sources:
            pending = self._restarts.get(source.name)
            if pending is None:
                failure = source.failure()
                if failure is None:
                    continue
                last, failed_at = self._backoff.get(source.name, (0.0, -math.inf))
                backoff = 1.0 if now - failed_at > RESTART_BACKOFF_MAX + last else min(2 * last, RESTART_BACKOFF_MAX)
                self._backoff[source.name] = (backoff, now)
                why = f"{type(failure).__name__}: {failure}"
                log.error("source %s failed (%s); restarting in %g s", source.name, why, backoff)
                self._restarts[source.name] = (now + backoff, why)
            elif now >= pending[0]:
                source.stop()
                source.start(self.outlet, self.checker)
                log.info("source %s restarted", source.name)
                del self._restarts[source.name]

    def run(self, duration: float | None = None, started: Callable[[], None] | None = None) -> None:
        """Run until `stop()` (or `duration` seconds); always drains, flushes and checkpoints on the way out."""
        try:
            self._run(duration, started)
        except (WriteError, SpoolFullError) as exc:
            raise RunFailed(
                f"{exc}; nothing acknowledged is lost: the sources resume from the last checkpoint at the next start"
            ) from None

    def _run(self, duration: float | None, started: Callable[[], None] | None) -> None:
        self.writer = open_writer(self.settings, block_when_full=True)
        self.reader = reader = open_reader(self.settings)
        self.fill_keys = FillKeys(self.state.stamps, StoredKeys(reader) if self.settings.run.stored_fill_keys else None)
        self.fill_points = FillPoints(self.fill_keys, self.writer)
        from collector.jobs.scheduler import start_scheduler

        scheduler = start_scheduler(self.settings, self.writer) if self.settings.jobs.enabled else None
        try:
            for source in self.sources:
                source.restore(self.state.tokens.get(source.name))
                source.start(self.outlet, self.checker)
            if started is not None:
                started()
            empty = checkpoint.Snapshot(state_data.EngineState({}, [], [], {}), {})
            self._saving = _Saving(self.snapshot_path, empty, self.state, time.perf_counter(), write=False)
            self._saving.start()
            self._loop(None if duration is None else time.monotonic() + duration)
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.stopping.set()
            for source in self.sources:
                source.stop()
            try:
                if self.error is None:
                    self._drain()
            finally:
                if scheduler is not None:
                    scheduler.shutdown(wait=True)
                if self.fill_points is not None:
                    self.fill_points.close()
                self.writer.close()
                reader.close()
                self.dead_letter.close()
                self.seen.close()
                if self.dispatcher is not None:
                    self.dispatcher.close()
                self._done.set()

    # ---- engine thread ------------------------------------------------------------------------
    def _loop(self, deadline: float | None) -> None:
        """Flush as soon as the engine is idle (queue empty, something booked) but not sooner than
        `run.flush_min_interval`, nor sooner than FLUSH_DUTY × the last flush's duration after it
        (slow writes stretch the interval), and at the latest `run.flush_interval` after the last one."""
        run = self.settings.run
        now = time.monotonic()
        flushed, flush_s = now, 0.0  # when the last flush ended, how long it took
        next_health, next_snapshot = now + run.health_interval, now + run.snapshot_interval
        waiting = self.outlet.queue
        while not self.stopping.is_set():
            latest = flushed + run.flush_interval
            soonest = min(latest, flushed + max(run.flush_min_interval, FLUSH_DUTY * flush_s))
            with contextlib.suppress(queue.Empty):
                self._process(waiting.get(timeout=max(0.0, (soonest if self._pending else latest) - time.monotonic())))
            now = time.monotonic()
            if now >= latest or (now >= soonest and self._pending and waiting.empty()):
                self._flush()
                self._supervise(now)
                flushed = time.monotonic()
                flush_s = flushed - now
                if now >= next_health:
                    self._write_health()
                    next_health = now + run.health_interval
                if now >= next_snapshot:
                    self._checkpoint()
                    # at most ~10% of the engine's time goes to checkpoints (a large state stretches the interval)
                    next_snapshot = now + max(run.snapshot_interval, CHECKPOINT_DUTY * self.checkpoint_ms / 1000)
            if deadline is not None and now >= deadline:
                break

    def _drain(self) -> None:
        while True:
            try:
                self._process(self.outlet.queue.get_nowait())
            except queue.Empty:
                break
        self._flush(everything=True)
        self._write_health()
        self._checkpoint(wait=True)

    def _process(self, batch: Batch) -> None:
        assert self.writer is not None and self.fill_keys is not None
        counters, booked, events = self.counters, self._unwritten, batch.events
        fresh = self.seen.add_many([event for event in events if type(event) is Fill])
        counters.marks_in += len(events) - len(fresh)
        if all(fresh) and not any(type(e) is Fill and e.action != "fill" for e in events):
            fills = self._book(events, booked, batch.received_ns)  # the usual batch: no duplicate, no revision
        else:
            fills = self._process_slowly(batch, iter(fresh))
        counters.fills_in += fills
        if batch.token is not None:
            self.state.tokens[batch.source] = batch.token
        self.latency.lag((time.perf_counter_ns() - batch.received_ns) / 1e6)
        self._pending.append((batch.received_ns, fills))

    def _process_slowly(self, batch: Batch, fresh: Iterator[bool]) -> int:
        """A batch with duplicates (dropped) or revisions (applied between the fills around them)."""
        booked, fills = self._unwritten, 0
        chunk: list[Fill | Mark] = []  # booked together: everything between two revisions
        for event in batch.events:
            if type(event) is Fill:
                if not next(fresh):
                    self.counters.fills_duplicate += 1
                    continue
                if event.action != "fill":  # a bust/correction: the fills before it are booked and written first
                    fills += self._book(chunk, booked, batch.received_ns)
                    chunk = []
                    self._write_fills(booked)
                    self._revise(event, batch.source)
                    continue
            chunk.append(event)
        return fills + self._book(chunk, booked, batch.received_ns)

    def _book(self, events: Sequence[Fill | Mark], booked: list[tuple[Fill, float]], received_ns: int) -> int:
        """Fills and marks through the engine and the alert rules; returns the number of fills.

        A batch that reaches into a new UTC day is booked up to each day's end, where the changed series get
        their perf points: replayed history keeps one point per series and day however fast it is read.
        """
        if not events:
            return 0
        day = self.engine.clock_ns // DAY_NS
        if max(event.ts for event in events) // DAY_NS > day:
            fills, start = 0, 0
            for i, event in enumerate(events):
                if event.ts // DAY_NS > day:
                    fills += self._book_days(events[start:i], booked, received_ns)
                    self._write_day_end()
                    day, start = event.ts // DAY_NS, i
            return fills + self._book_days(events[start:], booked, received_ns)
        return self._book_days(events, booked, received_ns)

    def _book_days(self, events: Sequence[Fill | Mark], booked: list[tuple[Fill, float]], received_ns: int) -> int:
        if not events:
            return 0
        clock = self.engine.clock_ns
        result = self.engine.on_events(events)
        fills = [(event, pnl) for event, pnl in zip(events, result.realized, strict=True) if type(event) is Fill]
        booked += fills
        self._booked_books.update((fill.account, fill.strategy) for fill, _ in fills)
        if self.alerts is not None and (alerts := self.alerts.on_batch(events, result, clock)):
            self._emit(alerts, received_ns)
        return len(fills)

    def _write_day_end(self) -> None:
        """Perf points of the series changed so far, at the engine clock (the last event of the day that ends)."""
        assert self.writer is not None
        changed = self.engine.take_changed() | self._revalued.keys()  # every series booked into is changed
        self._revalued, self._booked_books = {}, set()
        if not changed:
            return
        ts = self.engine.clock_ns
        written = self.heartbeat.due(changed, self.engine.series.values(), ts)
        self.writer.write_lines([perf_line(self.engine.row(series), ts) for series in written])
        self.counters.perf_points += len(written)
        self._closed_days |= changed

    def _write_fills(self, booked: list[tuple[Fill, float]]) -> None:
        """`fills` points, handed to their thread (keys checked against InfluxDB: one read per call)."""
        assert self.fill_points is not None
        self.fill_points.submit(list(booked))
        booked.clear()

    def _revise(self, event: Fill, source: str) -> None:
        assert self.writer is not None and self.fill_keys is not None and self.reader is not None
        assert self.fill_points is not None
        self.fill_points.wait()  # the revision reads the stored fills and the timestamp memory
        try:
            apply_revision(self.engine, event, self.writer, self.fill_keys, self.reader)
        except RevisionError as exc:
            self.checker.reject(RawRecord(f"{source}: {event.account}/{event.fill_id}", event_json(event)), str(exc))
            return
        log.info("%s of %s/%s applied: book re-derived", event.action, event.account, event.ref_fill_id)

    def _flush(self, everything: bool = False) -> None:
        """Fill points; perf points of the series fills were booked into and of the oldest share of those
        only revalued (everything: all of them); then wait until everything written so far is durable.

        A mark revalues every holder of its symbol: at a desk's scale nearly every series changes at
        every flush. Those wait in `_revalued`, oldest first; a flush dt after the previous one takes
        ⌈n × dt / run.flush_interval⌉ of the n waiting, and every one waiting longer than the interval:
        each is written within about the interval, and the points (InfluxDB's cost) spread evenly over
        the flushes instead of one flush in every interval taking them all while fills wait.
        """
        writer = self.writer
        assert writer is not None
        self._write_fills(self._unwritten)
        now = time.monotonic()
        books, self._booked_books = self._booked_books, set()
        changed = {series for key in books for series in self.engine.books[key].chain}
        revalued = self._revalued
        for series in self.engine.take_changed():
            if series not in changed:
                revalued.setdefault(series, now)
        interval = self.settings.run.flush_interval
        share = len(revalued) if everything else math.ceil(len(revalued) * min(1.0, (now - self._flushed) / interval))
        for series, since in list(revalued.items()):
            if share <= 0 and now - since < interval:
                break
            changed.add(series)
            share -= 1
        for series in changed:
            revalued.pop(series, None)
        self._flushed = now
        ts = self.engine.clock_ns
        written = self.heartbeat.due(changed, self.engine.series.values(), ts)
        for series in written:
            writer.write(perf_line(self.engine.row(series), ts))
        recheck, self._closed_days = changed | self._closed_days, set()
        if self.alerts is not None and (events := self.alerts.on_tick(recheck, self.event_now())):
            self._emit(events, None)
        self.counters.perf_points += len(written)
        if not written and not self._pending:
            return
        writer.flush()
        durable = time.perf_counter_ns()
        for received, fills in self._pending:
            self.latency.add((durable - received) / 1e6, fills)
        self._pending = []
        for callback in self.on_flush:
            callback(self)

    def _write_health(self) -> None:
        writer = self.writer
        assert writer is not None
        stats = writer.stats
        fields: dict[str, Any] = {
            "fills_in": self.counters.fills_in,
            "fills_rejected": self.checker.rejected,
            "fills_duplicate": self.counters.fills_duplicate,
            "marks_in": self.counters.marks_in,
            "queue_depth": self.outlet.depth(),
            "write_errors": stats.write_errors,
            "spooled_points": max(0, stats.spooled - stats.replayed),
            "perf_points": self.counters.perf_points,
            "series": len(self.engine.series),
            "checkpoint_ms": self.checkpoint_ms,
        }
        fields.update(self.latency.take())
        alert_latency = self.alert_latency.take()
        fields["alert_latency_p99_ms"] = alert_latency["latency_p99_ms"]
        fills_before, rejected_before = self._last_health
        new_fills, new_rejects = self.counters.fills_in - fills_before, self.checker.rejected - rejected_before
        fields["reject_rate"] = new_rejects / (new_fills + new_rejects) if new_fills + new_rejects else 0.0
        self._last_health = (self.counters.fills_in, self.checker.rejected)
        if self.alerts is not None:
            fields["alerts_fired"] = self.alerts.fired
            if events := self.alerts.on_health(fields, self.event_now()):
                self._emit(events, None)
        if self.dispatcher is not None:
            delivery = self.dispatcher.stats
            fields.update(notifications_sent=delivery.sent, notifications_failed=delivery.failed)
        writer.write(point("collector", {"instance": self.instance}, fields, time.time_ns()))
        self.checker.flush()

    def event_now(self) -> int:
        """The engine's event clock, advanced by the wall time since it last moved.

        Before the first event there is no event time: wall-clock time then (never 1970 + uptime).
        """
        clock, since = self._anchor
        now = time.monotonic_ns()
        if clock == 0 == self.engine.clock_ns:
            return time.time_ns()
        if self.engine.clock_ns != clock:
            self._anchor = (self.engine.clock_ns, now)
            return self.engine.clock_ns
        return clock + (now - since)

    def _emit(self, events: list[AlertEvent], received_ns: int | None) -> None:
        """Alert transitions: an `alerts` point each (made durable at once), the log, the notifiers."""
        writer = self.writer
        assert writer is not None
        for event in events:
            if received_ns is not None:
                event.latency_ms = (time.perf_counter_ns() - received_ns) / 1e6
                self.alert_latency.add(event.latency_ms, 1)
            writer.write(alert_line(event))
            if self.dispatcher is not None:
                self.dispatcher.submit(event)
        writer.flush()

    def _checkpoint(self, wait: bool = False) -> None:
        """Copy the state here (engine thread, milliseconds) and write it in the background; one write in flight.

        wait: block until it is written (the last one, on the way out).
        """
        assert self.writer is not None
        self._reap_checkpoint(wait)
        if self._saving is not None:  # the previous one is still being written: skip this interval's
            return
        started = time.perf_counter()
        assert self.fill_points is not None
        self._write_fills(self._unwritten)
        self.fill_points.wait()  # the timestamp memory settled, and
        self.writer.flush()  # everything the checkpoint covers durable first
        try:
            self.state.seen_position = self.seen.durable_position()
        except OSError as exc:
            self._checkpoint_failed(exc)
            return
        with checkpoint.no_gc():
            if self.alerts is not None:
                self.state.alerts = alerts_data(self.alerts.export_state())
            snap = checkpoint.snapshot(self.state, self._written)
        saving = self._saving = _Saving(self.snapshot_path, snap, self.state, started)
        self.checkpoint_block_ms = (time.perf_counter() - started) * 1000
        saving.start()
        if wait:
            self._reap_checkpoint(True)

    def _reap_checkpoint(self, wait: bool) -> None:
        """Once the background write is done: report a failure, or tell the sources what is now durable."""
        saving = self._saving
        if saving is None or (saving.is_alive() and not wait):
            return
        saving.join()
        self._saving = None
        self._written = saving.snapshot  # its buffers take the next copy
        if not saving.write:
            return
        if saving.error is not None:  # a full state disk must not end the run: the previous checkpoint stays valid
            self._checkpoint_failed(saving.error)
            return
        if self.checkpoint_problem is not None:
            log.info("checkpoint written again")
            self.checkpoint_problem = None
        tokens = saving.snapshot.data["tokens"]
        for source in self.sources:
            if source.name in tokens:
                source.checkpointed(tokens[source.name])
        self.checkpoint_ms = saving.ms
        log.debug(
            "checkpoint %s: %d bytes in %.1f ms (engine thread %.1f ms)",
            self.snapshot_path,
            saving.size,
            saving.ms,
            self.checkpoint_block_ms,
        )

    def _checkpoint_failed(self, exc: Exception) -> None:
        reason = exc.strerror if isinstance(exc, OSError) else repr(exc)
        if self.checkpoint_problem is None:
            log.error("cannot write the checkpoint (%s); retrying at every interval", reason)
        self.checkpoint_problem = f"cannot write the checkpoint: {reason}"
