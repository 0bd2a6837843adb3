"""Backends by `bus.kind`, imported only when chosen (single-process mode needs no broker client)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from collector.bus.base import Bus
from collector.config import BusConfig
from collector.errors import UserError


async def _jetstream(config: BusConfig) -> Bus:
    try:
        from collector.bus.jetstream import JetStreamBus
    except ImportError as exc:
        if exc.name is None or not exc.name.startswith("nats"):
            raise
        raise UserError("bus.kind: jetstream needs nats-py: pip install 'stratmon[bus]'") from None
    return await JetStreamBus.connect(config)


BACKENDS: dict[str, Callable[[BusConfig], Awaitable[Bus]]] = {"jetstream": _jetstream}


async def open_bus(config: BusConfig) -> Bus:
    """A connected bus of `config.kind`; close it with `await bus.close()`."""
    return await BACKENDS[config.kind](config)
