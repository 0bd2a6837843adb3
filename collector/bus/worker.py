"""A partition's books: the router's parts in global order → booked fills and the records for the aggregator.

The partition's Engine books its own fills and takes every other event of the global order as a price
(collector/engine/partition.py), so its book series equal one engine's. Parts at or below the watermark
(the last global seq booked) are replays — a restarted router re-sends the same seqs for the same source
events — and are skipped, in every partition alike; a fill id seen before in this partition is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from collector.bus.records import Marks, Part, Records, Trips
from collector.engine.engine import Engine
from collector.engine.partition import Prices, book
from collector.engine.positions import RoundTrip
from collector.model import Fill


@dataclass(slots=True)
class Booked:
    fills: list[tuple[Fill, float]]  # own fills booked, with their realized PnL
    trips: list[RoundTrip]
    records: Records


def _tail(prices: Prices, start: int) -> Prices:
    return Prices(prices.symbols, prices.ts[start:], prices.symbol[start:], prices.price[start:], prices.mark[start:])


@dataclass
class PartitionBooks:
    partition: int
    engine: Engine
    watermark: int = -1  # the last global seq booked
    seen: set[tuple[str, str]] = field(default_factory=set)  # (account, fill_id) of every fill booked

    def on_part(self, part: Part) -> Booked | None:
        """Book a part; None when all of it was booked before."""
        start = self.watermark + 1 - part.first
        if part.count == 0 or start > part.count - 1:
            return None
        start = max(start, 0)
        whole = part.prices()
        prices = _tail(whole, start) if start else whole
        fills, rows = [], []
        seen = self.seen
        for fill, at in zip(part.fills.fills(whole), part.fills.at, strict=True):
            key = (fill.account, fill.fill_id)
            if at >= start and key not in seen:
                seen.add(key)
                fills.append(fill)
                rows.append(at - start)
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
        return Booked(list(zip(fills, done.realized, strict=True)), trips, records)
