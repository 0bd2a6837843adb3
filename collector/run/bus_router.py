"""`stratmon run` with `bus:` set: the router. Sources → intake (validation, duplicate ids) → `fills.<p>`.

The intake is the single process's (sources, Checker, the duplicate-id journal), so the global order is
the order one engine would book. Busts and corrections go to the dead letter: re-deriving a book is the
single process's (its partition's later records would have to be revised in the aggregator too).

Each partition has one sender task publishing its parts in order (one publish in flight per partition: a
retry cannot reorder). The checkpoint (under the `router` lease, on the bus) holds the source positions, the
next global seq and batch, and the duplicate journal's position; it is saved once every part routed before
it has been acknowledged (acknowledged = replicated), and then the sources are told.
After a crash the sources replay from it and get the same seqs: the workers skip what they booked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import socket
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from collector.bus.base import Bus, Lease
from collector.bus.router import Message, Router
from collector.config import Settings
from collector.model import Fill, FillValidator, Mark, event_json
from collector.run.bus_common import bus_config, holding, open_bus
from collector.run.seen import SeenIds
from collector.sources.base import Batch, Checker, Outlet
from collector.sources.deadletter import DeadLetter
from collector.sources.records import RawRecord
from collector.sources.registry import build_sources

log = logging.getLogger(__name__)
NAME = "router"
HEADROOM = 4096  # bytes of the server's max_payload left for headers and framing
SENDER_QUEUE = 64  # parts waiting per partition before the router waits (backpressure)


class BusRouter:
    def __init__(self, settings: Settings, stopping: threading.Event) -> None:
        self.settings, self.stopping = settings, stopping
        self.checker = Checker(FillValidator(settings.ingest.max_future_skew), DeadLetter(settings.ingest.dead_letter))
        self.outlet = Outlet(settings.run.queue_batches, stopping)
        self.sources = build_sources(settings.sources)
        self.state_dir = Path(settings.state_dir) / "router"
        self.fills_in = self.duplicates = 0
        self.published = -1  # the last global seq acknowledged by the bus
        self.senders: list[asyncio.Task[None]] = []

    async def run(self, duration: float | None = None) -> None:
        bus = await open_bus(self.settings)
        try:
            owner = f"{self.settings.run.instance or socket.gethostname()}:router"
            async with holding(bus, NAME, owner, bus_config(self.settings).lease_ttl) as lease:
                await self._route(bus, lease, None if duration is None else time.monotonic() + duration)
        finally:
            await bus.close()

    async def _route(self, bus: Bus, lease: Lease, deadline: float | None) -> None:
        raw = await bus.load(NAME)
        saved: dict[str, Any] = orjson.loads(raw) if raw is not None else {}
        tokens: dict[str, Any] = saved.get("tokens", {})
        seen = SeenIds(self.state_dir, self.settings.ingest.dedupe_window)
        position = saved.get("seen")
        seen.restore(None if position is None else (int(position[0]), int(position[1])))
        router = Router(
            bus_config(self.settings).partitions,
            bus.max_payload - HEADROOM,
            saved.get("next_seq", 0),
            saved.get("next_batch", 0),
        )
        self.published = router.next_seq - 1
        queues: list[asyncio.Queue[Message]] = [asyncio.Queue(SENDER_QUEUE) for _ in range(router.partitions)]
        self.senders = senders = [asyncio.create_task(self._send(bus, q)) for q in queues]
        for source in self.sources:
            source.use_state_dir(self.state_dir)
            source.restore(tokens.get(source.name))
            source.start(self.outlet, self.checker)
        saved_at = time.monotonic()
        try:
            while True:
                stop = self.stopping.is_set() or (deadline is not None and time.monotonic() >= deadline)
                if stop:
                    for source in self.sources:
                        source.stop()
                batch = await self._next(0.0 if stop else 0.2)
                if batch is None and stop:
                    break
                if batch is not None:
                    await self._book(batch, seen, router, queues, tokens)
                for sender in senders:
                    if sender.done():
                        sender.result()  # a publish that failed for good ends the run
                if time.monotonic() - saved_at >= self.settings.run.snapshot_interval:
                    await self._checkpoint(bus, lease, router, queues, seen, tokens)
                    saved_at = time.monotonic()
            await self._checkpoint(bus, lease, router, queues, seen, tokens)
        finally:
            self.stopping.set()
            for source in self.sources:
                source.stop()
            for sender in senders:
                sender.cancel()
            seen.close()
            self.checker.dead_letter.close()

    async def _next(self, timeout: float) -> Batch | None:
        try:
            return self.outlet.queue.get_nowait()
        except queue.Empty:
            if not timeout:
                return None
        with contextlib.suppress(queue.Empty):
            return await asyncio.to_thread(self.outlet.queue.get, True, timeout)
        return None

    async def _book(
        self,
        batch: Batch,
        seen: SeenIds,
        router: Router,
        queues: list[asyncio.Queue[Message]],
        tokens: dict[str, Any],
    ) -> None:
        routable: list[Fill | Mark] = []
        for event in batch.events:
            if type(event) is Fill and event.action != "fill":  # its book may be re-derived only by one engine
                record = RawRecord(f"{batch.source}: {event.account}/{event.fill_id}", event_json(event))
                self.checker.reject(record, f"{event.action}: busts and corrections need the single-process mode")
            else:
                routable.append(event)
        fresh = iter(seen.add_many([e for e in routable if type(e) is Fill]))
        events = [e for e in routable if type(e) is not Fill or next(fresh)]
        fills = sum(1 for e in events if type(e) is Fill)
        self.duplicates += sum(1 for e in batch.events if type(e) is Fill) - fills
        self.fills_in += fills
        for message in await asyncio.to_thread(router.route, events):  # encoding: not in the event loop
            await queues[message.partition].put(message)
        if batch.token is not None:
            tokens[batch.source] = batch.token

    async def _send(self, bus: Bus, parts: asyncio.Queue[Message]) -> None:
        while True:
            message = await parts.get()
            await bus.publish(f"fills.{message.partition}", message.payload, message.msg_id)
            parts.task_done()

    async def _checkpoint(
        self,
        bus: Bus,
        lease: Lease,
        router: Router,
        queues: list[asyncio.Queue[Message]],
        seen: SeenIds,
        tokens: dict[str, Any],
    ) -> None:
        """Once every part so far is acknowledged: the router's state under its lease, then tell the sources."""
        joined: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*(q.join() for q in queues)))
        waiting: list[asyncio.Future[Any]] = [joined, *self.senders]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        for sender in self.senders:
            if sender.done():
                joined.cancel()
                sender.result()  # a publish that failed for good ends the run
        await joined
        self.published = router.next_seq - 1
        state = {
            "tokens": dict(tokens),
            "next_seq": router.next_seq,
            "next_batch": router.next_batch,
            "seen": list(seen.durable_position()),
        }
        await bus.save(NAME, orjson.dumps(state), lease)
        for source in self.sources:
            if source.name in tokens:
                source.checkpointed(tokens[source.name])
        self.checker.flush()
