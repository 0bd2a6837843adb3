"""What the bus-mode processes (router, workers, aggregator) share: the bus from config, leases, engine checkpoints.

A process holds a lease per thing it owns (the router, a partition, the aggregator) and renews it every
ttl/3; when renewing fails the lease is lost (a standby took over or the bus fenced it) and the owning task
is cancelled at once: a stale owner must neither publish nor checkpoint (the bus refuses its checkpoint
anyway: `Bus.save` compares the fencing token).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from collector.alerts.evaluator import AlertEngine
from collector.alerts.notify.dispatcher import Dispatcher
from collector.bus.base import Bus, Lease, LeaseLost
from collector.config import BusConfig, Settings
from collector.engine.engine import Engine
from collector.engine.partition import warm_up
from collector.errors import UserError
from collector.run import checkpoint
from collector.run.checkpoint import Checkpoint
from collector.store.lineproto import UniqueTimestamps

log = logging.getLogger(__name__)


def bus_config(settings: Settings) -> BusConfig:
    if settings.bus is None:
        raise UserError("this command needs bus: in the config (see stratmon.example.yaml, section bus:)")
    return settings.bus


async def open_bus(settings: Settings) -> Bus:
    from collector.bus import registry

    config = bus_config(settings)
    bus = await registry.open_bus(config)
    await bus.ensure_stream(config.partitions)
    return bus


async def _renew(lease: Lease, holder: asyncio.Task[Any]) -> None:
    try:
        while True:
            await asyncio.sleep(lease.ttl / 3)
            await lease.renew()
    except LeaseLost as exc:
        log.error("lease %s lost (%s): stopping its work", lease.name, exc)
        holder.cancel()


@contextlib.asynccontextmanager
async def holding(bus: Bus, name: str, owner: str, ttl: float) -> AsyncIterator[Lease]:
    """The lease `name`, renewed while the body runs; released on the way out (a standby takes over at once)."""
    await asyncio.to_thread(warm_up)  # a compile in the event loop would outlast the lease's ttl
    lease = await bus.lease(name, owner, ttl)
    task = asyncio.current_task()
    assert task is not None
    keeper = asyncio.create_task(_renew(lease, task))
    try:
        yield lease
    finally:
        keeper.cancel()
        with contextlib.suppress(Exception):
            await lease.release()


def new_engine(settings: Settings, kind: type[Engine] = Engine) -> Engine:
    engine = kind(settings.capital.accounts, settings.capital.default, settings.metrics.day_basis)
    engine.sample = settings.metrics.sample()
    return engine


async def restore(bus: Bus, name: str, settings: Settings, kind: type[Engine] = Engine) -> Checkpoint:
    """Checkpoint `name` from the bus (engine state v5 + `tokens`), or a fresh one; config applies as in `run`."""
    raw = await bus.load(name)
    if raw is None:
        return Checkpoint(engine=new_engine(settings, kind), stamps=UniqueTimestamps(settings.run.timestamp_memory))
    saved = checkpoint.decode(raw, settings.capital.accounts, settings.capital.default, settings.run.timestamp_memory)
    saved.engine.day_basis = settings.metrics.day_basis
    saved.engine.sample = settings.metrics.sample()
    log.info("%s: continuing from its checkpoint (%d fills so far)", name, saved.counters.fills_in)
    return saved


async def save(bus: Bus, name: str, state: Checkpoint, lease: Lease) -> None:
    await bus.save(name, await asyncio.to_thread(checkpoint.encode, state), lease)  # a big state: not in the loop


def alerting_health(alerts: AlertEngine | None, dispatcher: Dispatcher | None) -> dict[str, int]:
    """The health fields `run` reports for its alert rules and notifiers (none when alerts are off)."""
    fields: dict[str, int] = {}
    if alerts is not None:
        fields["alerts_fired"] = alerts.fired
    if dispatcher is not None:
        fields.update(notifications_sent=dispatcher.stats.sent, notifications_failed=dispatcher.stats.failed)
    return fields
