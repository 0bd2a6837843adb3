"""An Engine as one partition's books (a bus worker) or as the aggregates over all partitions (the aggregator).

A worker books its own fills and sees every other event as a price: another partition's fill moves the
symbol exactly as it moves it in one engine (a tick), so its books' equity, drawdown and daily changes are
those of one engine. Each own fill yields a record (kernel.run_records: notional, realized, fee, slippage,
trip net, dq, dc, opened). The aggregator applies the records and the marks in global order with the
kernel's `_apply_chain(first=1)`: its strategy, account and portfolio series are one engine's, bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from collector.engine import layout as L
from collector.engine.engine import BatchResult, Book, Engine, kernel
from collector.engine.positions import RoundTrip
from collector.engine.series import ALL, Series
from collector.model import Fill

KIND_FILL, KIND_MARK, KIND_TICK, KIND_RECORD = 0, 1, 2, 3  # kernel.run_records' event kinds
RF_WIDTH, RI_WIDTH = 7, 3  # kernel.RF_WIDTH / RI_WIDTH (kept here so no caller imports numba to read them)
R_SLIP, R_NET = 3, 4  # kernel.R_SLIP / R_NET: a record's floats
R_HAS_SLIP, R_TRIP = 0, 1  # kernel.R_HAS_SLIP / R_TRIP: its integers


@dataclass(slots=True)
class Prices:
    """Every event of a stretch of the global order as a price: ts, symbol (index into `symbols`), price, mark?"""

    symbols: list[str]
    ts: np.ndarray  # int64
    symbol: np.ndarray  # int64
    price: np.ndarray  # float64
    mark: np.ndarray  # bool: a marks-stream mark (else a fill's price)


@dataclass(slots=True)
class Booked:
    """What `book` did, per own fill (in `rows` order): realized PnL, the record's columns, round trips;
    `batch`: the whole stretch as `Engine.on_events` returns it (the alert rules read its arrays)."""

    realized: list[float]
    rf: np.ndarray  # (fills, RF_WIDTH) float64
    ri: np.ndarray  # (fills, RI_WIDTH) int64
    trips: dict[int, RoundTrip]  # index into the fills → its round trip
    batch: BatchResult


def _event_arrays(n: int) -> tuple[np.ndarray, ...]:
    return (
        np.zeros((n, L.EI_WIDTH), L.INT),
        np.zeros((n, L.EF_WIDTH), L.FLOAT),
        np.zeros((n, L.TF_WIDTH), L.FLOAT),
        np.zeros((n, L.TI_WIDTH), L.INT),
    )


def _symbol_rows(engine: Engine, symbols: list[str], index: np.ndarray) -> np.ndarray:
    table = np.array([engine._symbol(name) for name in symbols], L.INT)
    return table[index] if len(table) else np.zeros(0, L.INT)


def book(engine: Engine, prices: Prices, fills: Sequence[Fill], rows: Sequence[int]) -> Booked:
    """Events of the global order: `fills[i]` is event `rows[i]` (this partition's), the rest are prices."""
    n = len(prices.ts)
    ei, ef, tf, ti = _event_arrays(n)
    ei[:, L.E_KIND] = np.where(prices.mark, KIND_MARK, KIND_TICK)
    ei[:, L.E_ID] = _symbol_rows(engine, prices.symbols, prices.symbol)
    ei[:, L.E_TS] = prices.ts
    ef[:, L.E_PRICE] = prices.price
    at = list(rows)
    capital = engine._capital_updates = []
    try:
        engine._encode_fills(fills, at, ei, ef)
    finally:
        engine._capital_updates = None
    ei[at, L.E_KIND] = KIND_FILL
    rf, ri = np.zeros((n, RF_WIDTH), L.FLOAT), np.zeros((n, RI_WIDTH), L.INT)
    updates = np.array(capital, L.FLOAT).reshape(-1, 3)
    kernel().run_records(engine.g, *engine._state(), ei, ef, tf, ti, rf, ri, updates)
    has = ti[at, L.T_HAS]
    trips = {j: engine._trip(fills[j], tf[at[j]].tolist(), ti[at[j]].tolist()) for j in np.flatnonzero(has).tolist()}
    batch = BatchResult(tf[:, L.T_REALIZED].tolist(), {at[j]: trip for j, trip in trips.items()}, ei, ef, ti, tf)
    return Booked(tf[at, L.T_REALIZED].tolist(), rf[at], ri[at], trips, batch)


def apply_records(
    engine: Engine,
    marks: np.ndarray,
    keys: Sequence[tuple[str, str, str] | str],
    ts: np.ndarray,
    price: np.ndarray,
    rf: np.ndarray,
    ri: np.ndarray,
    trips: dict[int, RoundTrip],
) -> BatchResult:
    """Records (marks[i] False: keys[i] = (account, strategy, symbol)) and marks (keys[i] = symbol), in order.

    rf/ri: each record's columns from its worker (a mark's row is ignored); trips: the records' round trips by
    index. Returns the stretch as the alert rules read a batch of `Engine.on_events`: each record a fill of its
    position (kind 0) with its slippage and round trip, each mark a mark (no realized PnL: the rules read none).
    """
    n = len(keys)
    ei, ef, tf, ti = _event_arrays(n)
    ids = ei[:, L.E_ID]
    capital = engine._capital_updates = []
    try:
        for i, key in enumerate(keys):
            if isinstance(key, str):
                ids[i] = engine._symbol(key)
                continue
            p = engine.position_ids.get(key)
            if p is None:
                engine._event = i  # a new book's capital counts from this event on
                p = engine._position(key)
            ids[i] = p
    finally:
        engine._capital_updates = None
    ei[:, L.E_KIND] = np.where(marks, KIND_MARK, KIND_RECORD)
    ei[:, L.E_TS] = ts
    ef[:, L.E_PRICE] = price
    updates = np.array(capital, L.FLOAT).reshape(-1, 3)
    kernel().run_records(
        engine.g, *engine._state(), ei, ef, tf, ti, np.ascontiguousarray(rf), np.ascontiguousarray(ri), updates
    )
    record = ~marks
    ei[record, L.E_KIND] = KIND_FILL
    ei[record, L.E_HAS_SLIP] = ri[record, R_HAS_SLIP]
    ef[record, L.E_SLIP] = rf[record, R_SLIP]
    ti[record, L.T_HAS] = ri[record, R_TRIP]
    tf[record, L.T_NET] = np.where(ri[record, R_TRIP] == 1, rf[record, R_NET], 0.0)
    return BatchResult([0.0] * n, trips, ei, ef, ti, tf)


def warm_up() -> None:
    """Compile `run_records` (or load it from numba's cache: seconds) now, not while a lease's clock runs."""
    empty = Prices([], np.zeros(0, L.INT), np.zeros(0, L.INT), np.zeros(0, L.FLOAT), np.zeros(0, bool))
    book(Engine(), empty, [], [])


SINK = "_books"  # the one strategy and account series a worker's books roll up into (never written)


class BookEngine(Engine):
    """A worker's engine: each book's chain ends in one strategy, one account series and the portfolio shared
    by all its books, so a price revalues the books plus 3 holdings, not every partial aggregate (the
    aggregator computes the real ones). Book series are unaffected: a holding's revaluation touches only
    its own series. The real aggregate series exist (empty) so a checkpoint loads as a plain Engine;
    `adopt` turns that back into a BookEngine."""

    def _book(self, account: str, strategy: str) -> Book:
        book = self.books.get((account, strategy))
        if book is None:
            self._series("strategy", ALL, strategy)  # what checkpoint loading rebuilds chains from
            self._series("account", account, ALL)
            book = super()._book(account, strategy)
            book.chain = self._sink_chain(book.chain[0])
        return book

    def _sink_chain(self, series: Series) -> tuple[Series, Series, Series, Series]:
        return (series, self._series("strategy", ALL, SINK), self._series("account", SINK, ALL), self.portfolio)

    @classmethod
    def adopt(cls, engine: Engine) -> BookEngine:
        """A loaded worker checkpoint's Engine as a BookEngine (its arrays already point at the sink holdings)."""
        engine.__class__ = cls
        assert isinstance(engine, BookEngine)
        for book in engine.books.values():
            book.chain = engine._sink_chain(book.chain[0])
        return engine
