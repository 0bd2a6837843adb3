"""Message formats on the bus (msgspec msgpack, columnar): router → worker parts, worker → aggregator records.

A part (subject `fills.<p>`) covers a stretch of the global order, seq `first` … `first + n − 1`: every event
of it as a price (ts, symbol, price, mark?), so a worker moves every symbol as one engine would, plus the
partition's own fills in full (`at` = their index in the stretch). Its last seq is the worker's watermark.

Records (subject `records.<p>`): per own fill its global seq, book key, ts, price and the kernel's record
columns (float64/int64 rows as raw bytes: exact, and no per-value boxing), the round trips, and, from
partition 0 only, the stretch's marks (every part carries them; one copy reaches the aggregator).
"""

from __future__ import annotations

import msgspec
import numpy as np

from collector.engine import layout as L
from collector.engine.partition import RF_WIDTH, RI_WIDTH, Prices
from collector.model import Fill


class FillColumns(msgspec.Struct, array_like=True):
    """A part's own fills, one list per Fill field (ts, symbol and price are in the part's prices)."""

    at: list[int]
    account: list[str]
    strategy: list[str]
    side: list[str]
    qty: list[float]
    fill_id: list[str]
    fee: list[float]
    order_id: list[str | None]
    venue: list[str | None]
    arrival_price: list[float | None]
    order_ts: list[int | None]
    multiplier: list[float]

    @classmethod
    def of(cls, fills: list[Fill], at: list[int]) -> FillColumns:
        return cls(
            at,
            [f.account for f in fills],
            [f.strategy for f in fills],
            [f.side for f in fills],
            [f.qty for f in fills],
            [f.fill_id for f in fills],
            [f.fee for f in fills],
            [f.order_id for f in fills],
            [f.venue for f in fills],
            [f.arrival_price for f in fills],
            [f.order_ts for f in fills],
            [f.multiplier for f in fills],
        )

    def fills(self, prices: Prices) -> list[Fill]:
        at = self.at
        ts, price = prices.ts[at].tolist(), prices.price[at].tolist()
        symbols = [prices.symbols[y] for y in prices.symbol[at].tolist()]
        return [
            Fill(t, a, s, y, side, q, p, fid, fee, oid, venue, arrival, order_ts, mult)
            for t, a, s, y, side, q, p, fid, fee, oid, venue, arrival, order_ts, mult in zip(
                ts,
                self.account,
                self.strategy,
                symbols,
                self.side,
                self.qty,
                price,
                self.fill_id,
                self.fee,
                self.order_id,
                self.venue,
                self.arrival_price,
                self.order_ts,
                self.multiplier,
                strict=True,
            )
        ]


class Part(msgspec.Struct, array_like=True):
    """Router → worker: seq first … first + n − 1 of router batch `batch`, for one partition.

    The price columns are raw native-endian arrays (little-endian on x86-64 and arm64): int64 ts, int64 symbol
    index into `symbols`, float64 price, uint8 mark?; encoded once per batch for all partitions, read back
    without a per-value decode.
    """

    batch: int
    first: int
    symbols: list[str]
    ts: bytes
    symbol: bytes
    price: bytes
    mark: bytes
    fills: FillColumns

    @property
    def count(self) -> int:
        return len(self.mark)

    @property
    def last(self) -> int:
        return self.first + self.count - 1

    def prices(self) -> Prices:
        return Prices(
            self.symbols,
            np.frombuffer(self.ts, L.INT),
            np.frombuffer(self.symbol, L.INT),
            np.frombuffer(self.price, L.FLOAT),
            np.frombuffer(self.mark, bool),
        )


class Trips(msgspec.Struct, array_like=True):
    """Round trips completed by a records message's fills (`row` = the fill's row); exit ts = the fill's ts."""

    row: list[int]
    direction: list[int]
    entry_ts: list[int]
    entry_price: list[float]
    exit_price: list[float]
    qty: list[float]
    gross: list[float]
    fees: list[float]
    net: list[float]


class Marks(msgspec.Struct, array_like=True):
    seq: list[int]
    ts: list[int]
    symbol: list[str]
    price: list[float]


class Records(msgspec.Struct, array_like=True):
    """Worker → aggregator: partition `partition`'s booked fills up to global seq `watermark`."""

    partition: int
    batch: int
    watermark: int
    seq: list[int]
    account: list[str]
    strategy: list[str]
    symbol: list[str]
    ts: list[int]
    price: list[float]
    floats: bytes  # (rows, RF_WIDTH) float64, C order: kernel.R_NOTIONAL … R_DC
    ints: bytes  # (rows, RI_WIDTH) int64: kernel.R_HAS_SLIP, R_TRIP, R_OPENED
    trips: Trips
    marks: Marks

    def rf(self) -> np.ndarray:
        return np.frombuffer(self.floats, L.FLOAT).reshape(-1, RF_WIDTH)

    def ri(self) -> np.ndarray:
        return np.frombuffer(self.ints, L.INT).reshape(-1, RI_WIDTH)


PART_ENCODER = msgspec.msgpack.Encoder()
PART_DECODER = msgspec.msgpack.Decoder(Part)
RECORDS_DECODER = msgspec.msgpack.Decoder(Records)
