"""A partition's books: the router's parts in global order → booked fills and the records for the aggregator.

The partition's Engine books its own fills and takes every other event of the global order as a price
(collector/engine/partition.py), so its book series equal one engine's. Parts at or below the watermark
(the last global seq booked) are replays — a restarted router re-sends the same seqs for the same source
events — and are skipped, in every partition alike; a fill id seen before in this partition is dropped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from collector.bus.records import Marks, Part, Records, Trips
from collector.engine.engine import BatchResult, Engine
from collector.engine.partition import Prices, book
from collector.engine.positions import RoundTrip
from collector.intake import RecentIds
from collector.model import Fill

DEFAULT_WINDOW = 100_000  # in-process use (tests); the worker sizes it from ingest.dedupe_window


@dataclass(slots=True)
class Booked:
    fills: list[tuple[Fill, float]]  # own fills booked, with their realized PnL
    trips: list[RoundTrip]
    records: Records
    batch: BatchResult  # the part's stretch as `Engine.on_events` returns it (the book-level alert rules)


def _tail(prices: Prices, start: int) -> Prices:
    return Prices(prices.symbols, prices.ts[start:], prices.symbol[start:], prices.price[start:], prices.mark[start:])


class SeenFills:
    """The last `capacity` (account, fill_id) booked, exact (collector.intake.RecentIds: memory and checkpoint
    stay bounded, ≤ capacity lines); `text()` / `load` carry it through a checkpoint in arrival order, so
    eviction after a restart is the same as without one."""

    def __init__(self, capacity: int = DEFAULT_WINDOW) -> None:
        self.ids = RecentIds(capacity)

    def __len__(self) -> int:
        return len(self.ids)

    def add_many(self, keys: list[tuple[str, str]]) -> list[bool]:
        """True for each key not among the window's (nor an earlier one of `keys`): booked now."""
        return self.ids.add_many(keys)

    def text(self) -> str:
        """The window's keys, oldest first, one `account<TAB>fill_id` line each (the journal's suffix)."""
        window = self.ids.window
        window.journal.flush()
        start = window.oldest_offset()
        return os.pread(window.journal.fileno(), window.length - start, start).decode()

    def load(self, text: str) -> None:
        self.ids.add_many(
            [(account, fill_id) for account, _, fill_id in (line.partition("\t") for line in text.splitlines())]
        )


@dataclass
class PartitionBooks:
    partition: int
    engine: Engine
    watermark: int = -1  # the last global seq booked
    seen: SeenFills = field(default_factory=SeenFills)  # (account, fill_id) of the latest fills booked

    def on_part(self, part: Part) -> Booked | None:
        """Book a part; None when all of it was booked before."""
        start = self.watermark + 1 - part.first
        if part.count == 0 or start > part.count - 1:
            return None
        start = max(start, 0)
        whole = part.prices()
        prices = _tail(whole, start) if start else whole
        candidates = [
            (fill, at) for fill, at in zip(part.fills.fills(whole), part.fills.at, strict=True) if at >= start
        ]
        fresh = self.seen.add_many([(fill.account, fill.fill_id) for fill, _ in candidates])
        fills = [fill for (fill, _), new in zip(candidates, fresh, strict=True) if new]
        rows = [at - start for (_, at), new in zip(candidates, fresh, strict=True) if new]
        done = book(self.engine, prices, fills, rows)
        self.watermark = part.last
        first = part.first + start
        trips = [done.trips[j] for j in sorted(done.trips)]
        mark_rows = np.flatnonzero(prices.mark)
        marks = (
            Marks(
                (mark_rows + first).tolist(),
                prices.ts[mark_rows].tolist(),
                [prices.symbols[y] for y in prices.symbol[mark_rows].tolist()],
                prices.price[mark_rows].tolist(),
            )
            if self.partition == 0
            else Marks([], [], [], [])
        )
        records = Records(
            self.partition,
            part.batch,
            part.last,
            [first + r for r in rows],
            [f.account for f in fills],
            [f.strategy for f in fills],
            [f.symbol for f in fills],
            [f.ts for f in fills],
            [f.price for f in fills],
            done.rf.tobytes(),
            done.ri.tobytes(),
            Trips(
                sorted(done.trips),
                [t.direction for t in trips],
                [t.entry_ts for t in trips],
                [t.entry_price for t in trips],
                [t.exit_price for t in trips],
                [t.qty for t in trips],
                [t.gross_pnl for t in trips],
                [t.fees for t in trips],
                [t.net_pnl for t in trips],
            ),
            marks,
        )
        return Booked(list(zip(fills, done.realized, strict=True)), trips, records, done.batch)
