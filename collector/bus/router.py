"""The router: source batches → a global order (seq per event) → one part per partition per batch.

Partition of a fill = crc32("account\\x00strategy") mod P (stable across processes and versions, unlike
Python's hash; books, not accounts, because accounts are few and skewed). Every part of a batch carries all
of the batch's events as prices, so each worker moves every symbol exactly as one engine does.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from collector.bus.records import PART_ENCODER, FillColumns, Part
from collector.engine import layout as L
from collector.errors import UserError
from collector.model import Fill, Mark


def partition_of(account: str, strategy: str, partitions: int) -> int:
    return zlib.crc32(f"{account}\x00{strategy}".encode()) % partitions


@dataclass(slots=True)
class Message:
    partition: int
    # "<first seq>-<last seq>-<partition>": a replay after a router restart (same seqs for the same source
    # events, maybe cut into other batches) is dropped by the broker where it repeats a stretch exactly, and
    # skipped by the worker (below its watermark) where it overlaps one
    msg_id: str
    payload: bytes
    last: int  # the last global seq it covers


class Router:
    """Assigns global seqs (from `next_seq`, kept in the router's checkpoint) and cuts batches into parts.

    limit: the largest payload (the server's max_payload less headroom); a batch whose part would be larger
    is cut into several stretches of the global order, each a message for every partition.
    """

    def __init__(self, partitions: int, limit: int, next_seq: int = 0, next_batch: int = 0) -> None:
        if partitions < 1:
            raise UserError(f"bus.partitions: {partitions}; expected at least 1")
        self.partitions, self.limit = partitions, limit
        self.next_seq, self.next_batch = next_seq, next_batch

    def route(self, events: Sequence[Fill | Mark]) -> list[Message]:
        """Messages for one batch (fresh fills and marks, in source order; revisions are not routed)."""
        for event in events:
            if type(event) is Fill and event.action != "fill":
                raise ValueError(f"{event.action} of {event.account}/{event.ref_fill_id}: not routable (a revision)")
        if not events:
            return []
        batch, first = self.next_batch, self.next_seq
        self.next_batch += 1
        self.next_seq += len(events)
        out: list[Message] = []
        self._cut(events, batch, first, out)
        return out

    def _cut(self, events: Sequence[Fill | Mark], batch: int, first: int, out: list[Message]) -> None:
        payloads = self._parts(events, batch, first)
        if len(events) > 1 and max(map(len, payloads)) > self.limit:
            half = len(events) // 2
            self._cut(events[:half], batch, first, out)
            self._cut(events[half:], batch, first + half, out)
            return
        if len(events) == 1 and len(payloads[0]) > self.limit:
            raise UserError(f"an event needs {len(payloads[0])} bytes, more than the bus payload limit {self.limit}")
        last = first + len(events) - 1
        out += (Message(p, f"{first}-{last}-{p}", data, last) for p, data in enumerate(payloads))

    def _parts(self, events: Sequence[Fill | Mark], batch: int, first: int) -> list[bytes]:
        symbols: dict[str, int] = {}
        index = [symbols.setdefault(event.symbol, len(symbols)) for event in events]
        own: list[tuple[list[Fill], list[int]]] = [([], []) for _ in range(self.partitions)]
        for i, event in enumerate(events):
            if type(event) is Fill:
                fills, at = own[partition_of(event.account, event.strategy, self.partitions)]
                fills.append(event)
                at.append(i)
        columns = (
            np.array([event.ts for event in events], L.INT).tobytes(),
            np.array(index, L.INT).tobytes(),
            np.array([event.price for event in events], L.FLOAT).tobytes(),
            np.array([type(event) is Mark for event in events], bool).tobytes(),
        )
        names = list(symbols)
        return [PART_ENCODER.encode(Part(batch, first, names, *columns, FillColumns.of(f, at))) for f, at in own]
