"""The incremental engine: each fill updates its book and the three aggregates above it.

Cost per fill does not depend on history length: FIFO work is amortized O(1) per lot, the four
series are updated in place, and a price change revalues only the series that hold the symbol.
Every series' equity is evaluated after each event that changes it (drawdown, daily changes).

State is columnar (collector/engine/layout.py): series, holdings, positions, lots and symbols are
rows of numpy arrays, and a batch of events is booked by a compiled kernel
(collector/engine/kernel.py). This class interns account/strategy/symbol strings to row ids,
hands each batch to the kernel as arrays, and turns the results back into Python objects (round
trips are rare next to fills). Series are views over the arrays.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from types import ModuleType
from typing import Any

import numpy as np

from collector.engine import layout as L
from collector.engine.daily import DayBasis
from collector.engine.metrics import MinSample
from collector.engine.positions import RoundTrip
from collector.engine.revise import BookLog
from collector.engine.series import ALL, LEVELS, Holding, Series
from collector.model import Fill, Mark

_kernel: ModuleType | None = None
_FILL_FIELDS = attrgetter(
    "ts", "price", "qty", "fee", "multiplier", "side", "arrival_price", "account", "strategy", "symbol"
)


def kernel() -> ModuleType:
    """collector.engine.kernel, imported (and numba with it) on first use."""
    global _kernel
    if _kernel is None:
        from collector.engine import kernel as module

        _kernel = module
    return _kernel


@dataclass
class FillResult:
    realized_pnl: float
    round_trip: RoundTrip | None


@dataclass(slots=True)
class BatchResult:
    """What `on_events` did: realized PnL per event (0.0 for a mark) and the round trips, by event index.

    `ei`, `ef`, `ti`, `tf`: the kernel's event and result arrays (layout.py), for consumers that work
    per batch in arrays (the alert rules) rather than per event in Python.
    """

    realized: list[float]
    trips: dict[int, RoundTrip]
    ei: np.ndarray
    ef: np.ndarray
    ti: np.ndarray
    tf: np.ndarray


@dataclass
class Book:
    chain: tuple[Series, Series, Series, Series]  # book, strategy, account, portfolio
    positions: dict[str, int] = field(default_factory=dict)  # symbol → position row


# table name → (float array, int array, width of each)
_TABLES = {
    "series": ("sf", "si", L.SF_WIDTH, L.SI_WIDTH),
    "holdings": ("hf", "hi", L.HF_WIDTH, L.HI_WIDTH),
    "positions": ("pf", "pi", L.PF_WIDTH, L.PI_WIDTH),
    "symbols": ("yf", "yi", L.YF_WIDTH, L.YI_WIDTH),
}
_FLOAT_DEFAULTS = {"series": {L.S_DAY: -1.0}}  # a new row's fields that are not 0
_INT_DEFAULTS = {
    "series": {L.S_HEAD: -1, L.S_TAIL: -1},
    "holdings": {L.H_NEXT: -1, L.H_PREV: -1, L.H_SLOT: -1},
    "positions": {L.P_HEAD: -1, L.P_TAIL: -1},
    "symbols": {},
}


def aligned(array: np.ndarray, rows: int | None = None) -> np.ndarray:
    """A copy of array on a 64-byte boundary (a row of `sf` is then whole cache lines, one of `hf` half of one),
    grown to `rows` rows of zeros if given."""
    shape = (len(array) if rows is None else rows, *array.shape[1:])
    size = int(np.prod(shape)) * array.itemsize
    raw = np.zeros(size + 64, np.uint8)
    skip = -raw.ctypes.data % 64
    out = raw[skip : skip + size].view(array.dtype).reshape(shape)
    out[: len(array)] = array
    return out


class Engine:
    def __init__(
        self,
        capital_by_account: dict[str, float] | None = None,
        default_capital: float = 1e6,
        day_basis: DayBasis = "trading",
        bust_window: int = 0,
        revalue: bool = True,
    ) -> None:
        self.capital_by_account = dict(capital_by_account or {})
        self.default_capital = default_capital
        self.sample = MinSample()  # the sample Sharpe and the trade ratios need (config `metrics.min_*`)
        # the last fills of each book, for busts and corrections (engine/revise.py); 0 = none kept
        self.log: BookLog | None = BookLog(bust_window) if bust_window > 0 else None
        self.g = np.zeros(L.G_WIDTH, L.INT)
        self.g[L.G_FREE] = -1
        self.counts = {name: 0 for name in _TABLES}
        for fname, iname, fwidth, iwidth in _TABLES.values():
            setattr(self, fname, aligned(np.zeros((4, fwidth), L.FLOAT)))
            setattr(self, iname, aligned(np.zeros((4, iwidth), L.INT)))
        self.sf: np.ndarray
        self.si: np.ndarray
        self.hf: np.ndarray
        self.hi: np.ndarray
        self.pf: np.ndarray
        self.pi: np.ndarray
        self.yf: np.ndarray
        self.yi: np.ndarray
        self.lf = np.zeros((0, L.LF_WIDTH), L.FLOAT)  # lots: a pool with a free list (g[G_FREE], ln)
        self.ln = np.zeros(0, L.INT)
        self.day_basis = day_basis  # which days are Sharpe/Sortino periods (engine/daily.py)
        # False: positions and realized PnL per fill only (`stratmon ingest`): no series, marks or equity
        self.revalue = revalue
        self.series: dict[tuple[str, str, str], Series] = {}
        self.by_index: list[Series] = []
        self.keys: list[tuple[str, str, str]] = []  # series row → key (append-only: a checkpoint copies it whole)
        self.books: dict[tuple[str, str], Book] = {}
        self.symbols: list[str] = []
        self.symbol_ids: dict[str, int] = {}
        self.position_ids: dict[tuple[str, str, str], int] = {}  # (account, strategy, symbol) → position row
        self.holding_ids: dict[tuple[int, int], int] = {}  # (series row, symbol row) → holding row
        self._capital_updates: list[tuple[int, int, float]] | None = None  # (event, series, capital) of a batch
        self._event = 0
        self.portfolio = self._series("portfolio", ALL, ALL)

    # ---- settings that live in the kernel's globals ------------------------------------------
    @property
    def day_basis(self) -> DayBasis:
        return "calendar" if self.g[L.G_CALENDAR] else "trading"

    @day_basis.setter
    def day_basis(self, basis: DayBasis) -> None:
        self.g[L.G_CALENDAR] = 1 if basis == "calendar" else 0

    @property
    def revalue(self) -> bool:
        return bool(self.g[L.G_REVALUE])

    @revalue.setter
    def revalue(self, value: bool) -> None:
        self.g[L.G_REVALUE] = 1 if value else 0

    @property
    def clock_ns(self) -> int:
        return int(self.g[L.G_CLOCK])

    @clock_ns.setter
    def clock_ns(self, value: int) -> None:
        self.g[L.G_CLOCK] = value

    @property
    def marks(self) -> dict[str, float]:
        """The last mark of every symbol that has one (a copy)."""
        n = self.counts["symbols"]
        has = np.flatnonzero(self.yi[:n, L.Y_HAS_MARK])
        return dict(zip([self.symbols[i] for i in has], self.yf[has, L.Y_MARK].tolist(), strict=True))

    # ---- input ----------------------------------------------------------------------------
    def on_fill(self, fill: Fill) -> FillResult:
        result = self.on_events((fill,))
        return FillResult(result.realized[0], result.trips.get(0))

    def on_mark(self, mark: Mark) -> None:
        self.on_events((mark,))

    def on_events(self, events: Sequence[Fill | Mark]) -> BatchResult:
        """A batch of fills (action "fill") and marks, in order: the hot path of `run`."""
        n = len(events)
        ei = np.zeros((n, L.EI_WIDTH), L.INT)
        ef = np.zeros((n, L.EF_WIDTH), L.FLOAT)
        capital = self._capital_updates = []
        if all(type(event) is Fill for event in events):
            self._encode_fills(events, None, ei, ef)  # type: ignore[arg-type]
        else:
            rows = [i for i, event in enumerate(events) if type(event) is Fill]
            self._encode_fills([events[i] for i in rows], rows, ei, ef)  # type: ignore[misc]
            for i, event in enumerate(events):
                if type(event) is not Fill:
                    ei[i, L.E_KIND], ei[i, L.E_ID], ei[i, L.E_TS] = 1, self._symbol(event.symbol), event.ts
                    ef[i, L.E_PRICE] = event.price
        self._capital_updates = None
        tf = np.zeros((n, L.TF_WIDTH), L.FLOAT)
        ti = np.zeros((n, L.TI_WIDTH), L.INT)
        updates = np.array(capital, L.FLOAT).reshape(-1, 3)
        kernel().run(self.g, *self._state(), ei, ef, tf, ti, updates)
        at = np.flatnonzero(ti[:, L.T_HAS])
        trips = {
            i: self._trip(events[i], floats, ints)  # type: ignore[arg-type]
            for i, floats, ints in zip(at.tolist(), tf[at].tolist(), ti[at].tolist(), strict=True)
        }
        return BatchResult(tf[:, L.T_REALIZED].tolist(), trips, ei, ef, ti, tf)

    def _encode_fills(self, fills: Sequence[Fill], rows: list[int] | None, ei: np.ndarray, ef: np.ndarray) -> None:
        """Fills into rows `rows` (None: all) of the event arrays, columns at a time; new positions interned."""
        if not fills:
            return
        if self.log is not None:
            add = self.log.add
            for fill in fills:
                add(fill, self)
        ts, price, qty, fee, mult, side, arrival, accounts, strategies, symbols = zip(
            *map(_FILL_FIELDS, fills), strict=True
        )
        keys = list(zip(accounts, strategies, symbols, strict=True))
        ids = list(map(self.position_ids.get, keys))
        if None in ids:
            self._open_positions(keys, ids, rows)
        self._reserve_lots(len(fills))
        at = slice(None) if rows is None else rows
        buy = np.fromiter(map("buy".__eq__, side), bool, len(fills))
        price_a, arrival_a = np.array(price, L.FLOAT), np.array(arrival, L.FLOAT)  # no arrival price → NaN
        has_slip = ~np.isnan(arrival_a)
        direction = np.where(buy, 1.0, -1.0)
        with np.errstate(invalid="ignore", divide="ignore"):  # same operations, same order as Fill.slippage_bps
            slip = direction * (price_a - arrival_a) / arrival_a * 10_000.0
        ei[at, L.E_ID] = ids
        ei[at, L.E_TS] = ts
        ei[at, L.E_SIGN] = np.where(buy, 1, -1)
        ei[at, L.E_HAS_SLIP] = has_slip
        ef[at, L.E_QTY] = qty
        ef[at, L.E_PRICE] = price_a
        ef[at, L.E_FEE] = fee
        ef[at, L.E_MULT] = mult
        ef[at, L.E_SLIP] = np.where(has_slip, slip, 0.0)

    def run(self, fills: Iterable[Fill]) -> None:
        self.on_events(list(fills))

    # ---- output ---------------------------------------------------------------------------
    def capital_base(self, series: Series) -> float:
        return sum(self.capital_by_account.get(a, self.default_capital) for a in series.accounts)

    def row(self, series: Series) -> dict[str, Any]:
        return series.row(self.capital_base(series), self.clock_ns, self.day_basis, self.sample)

    def rows(self, level: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """Rows by level (the `stratmon report` JSON shape), sorted by account then strategy."""
        out: dict[str, list[dict[str, Any]]] = {name: [] for name in LEVELS if level in (None, name)}
        for key in sorted(self.series):
            if key[0] in out and self.series[key].fills:
                out[key[0]].append(self.row(self.series[key]))
        return out

    def take_changed(self) -> set[Series]:
        """Series changed since the last call (what a live writer flushes)."""
        out = np.empty(self.counts["series"], L.INT)
        n = kernel().take_changed(self.g, self.si, self.yi, out)
        by_index = self.by_index
        return {by_index[i] for i in out[:n].tolist()}

    def holdings_of(self, index: int) -> dict[str, Holding]:
        """Series `index`'s holdings by symbol, in the order they were opened (Series.holdings)."""
        count = int(self.si[index, L.S_HOLDINGS])
        if not count:
            return {}
        ids = np.empty(count, L.INT)
        kernel().holdings_of(self.si, self.hi, index, ids)
        q, c, v = self.hf[ids][:, [L.H_Q, L.H_C, L.H_V]].T
        held = self.hi[ids, L.H_SLOT] >= 0  # a holder's value is q × mark (layout.py)
        v[held] = q[held] * self.yf[self.hi[ids[held], L.H_SYMBOL], L.Y_MARK]
        q, c, v = q.tolist(), c.tolist(), v.tolist()
        return {
            self.symbols[y]: Holding(*state)
            for y, *state in zip(
                self.hi[ids, L.H_SYMBOL].tolist(), q, c, v, self.hi[ids, L.H_BOOKS].tolist(), strict=True
            )
        }

    def exposure_of(self, index: int) -> tuple[float, float]:
        """Series `index`'s (gross, net) exposure: Σ |q × mark|, Σ q × mark over its holdings."""
        gross, net = kernel().exposure(self.si, self.hf, self.hi, self.yf, index)
        return float(gross), float(net)

    def value(self, h: int) -> float:
        """Holding h's value: q × its symbol's mark while it is a holder (layout.py), else the stored H_V."""
        if self.hi[h, L.H_SLOT] >= 0:
            return float(self.hf[h, L.H_Q] * self.yf[self.hi[h, L.H_SYMBOL], L.Y_MARK])
        return float(self.hf[h, L.H_V])

    def lots(self, p: int) -> list[list[float]]:
        """Position p's open lots, oldest first: [qty, price, multiplier, original qty]."""
        out = []
        lot = int(self.pi[p, L.P_HEAD])
        while lot >= 0:
            out.append(self.lf[lot].tolist())
            lot = int(self.ln[lot])
        return out

    def refresh_capital(self) -> None:
        """Recompute every series' capital base (after `capital_by_account` changed)."""
        for series in self.by_index:
            self.sf[series.index, L.S_CAPITAL] = self.capital_base(series)

    def copy(self) -> Engine:
        """An independent engine with the same state (the log is not copied)."""
        clone = copy.copy(self)
        clone.log = None
        for name in ("g", "lf", "ln", *(a for t in _TABLES.values() for a in t[:2])):
            setattr(clone, name, aligned(getattr(self, name)))
        clone.counts = dict(self.counts)
        clone.symbols, clone.symbol_ids = list(self.symbols), dict(self.symbol_ids)
        clone.position_ids, clone.holding_ids = dict(self.position_ids), dict(self.holding_ids)
        clone.by_index = []
        for series in self.by_index:
            twin = Series(clone, series.index, series.level, series.account, series.strategy)
            twin.accounts = set(series.accounts)
            clone.by_index.append(twin)
        clone.series = {s.key: s for s in clone.by_index}
        clone.keys = list(self.keys)
        clone.portfolio = clone.series[self.portfolio.key]
        clone.books = {
            key: Book(tuple(clone.by_index[s.index] for s in book.chain), dict(book.positions))  # type: ignore[arg-type]
            for key, book in self.books.items()
        }
        return clone

    # ---- interning ------------------------------------------------------------------------
    def _state(self) -> tuple[np.ndarray, ...]:
        return (self.sf, self.si, self.hf, self.hi, self.pf, self.pi, self.lf, self.ln, self.yf, self.yi)

    def _row(self, table: str, count: int = 1) -> int:
        """The first of `count` new zeroed rows of `table` (arrays doubled when full)."""
        fname, iname, _, _ = _TABLES[table]
        index = self.counts[table]
        end = index + count
        floats, ints = getattr(self, fname), getattr(self, iname)
        if end > len(floats):
            size = max(2 * len(floats), end)
            floats, ints = aligned(floats, size), aligned(ints, size)
            setattr(self, fname, floats)
            setattr(self, iname, ints)
        for column, fvalue in _FLOAT_DEFAULTS.get(table, {}).items():
            floats[index:end, column] = fvalue
        for column, value in _INT_DEFAULTS[table].items():
            ints[index:end, column] = value
        self.counts[table] = end
        return index

    def _reserve_lots(self, count: int) -> None:
        """At least `count` free lots (each fill opens at most one)."""
        free = int(self.g[L.G_NFREE])
        if free >= count:
            return
        old = len(self.ln)
        size = max(2 * old, old + count - free, 64)
        self.lf = np.concatenate([self.lf, np.zeros((size - old, L.LF_WIDTH), L.FLOAT)])
        links = np.arange(old + 1, size + 1, dtype=L.INT)
        links[-1] = self.g[L.G_FREE]
        self.ln = np.concatenate([self.ln, links])
        self.g[L.G_FREE] = old
        self.g[L.G_NFREE] = free + size - old

    def _symbol(self, symbol: str) -> int:
        y = self.symbol_ids.get(symbol)
        if y is None:
            y = self.symbol_ids[symbol] = self._row("symbols")
            self.symbols.append(symbol)
        return y

    def _series(self, level: str, account: str, strategy: str) -> Series:
        key = (level, account, strategy)
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = Series(self, self._row("series"), level, account, strategy)
            self.by_index.append(series)
            self.keys.append(key)
        return series

    def _book(self, account: str, strategy: str) -> Book:
        book = self.books.get((account, strategy))
        if book is None:
            chain = (
                self._series("book", account, strategy),
                self._series("strategy", ALL, strategy),
                self._series("account", account, ALL),
                self.portfolio,
            )
            for series in chain:
                if account not in series.accounts:
                    series.accounts.add(account)
                    if self._capital_updates is None:
                        self.sf[series.index, L.S_CAPITAL] = self.capital_base(series)
                    else:  # in a batch: from its event on (drawdown % of NAV uses it)
                        self._capital_updates.append((self._event, series.index, self.capital_base(series)))
            book = self.books[(account, strategy)] = Book(chain)
        return book

    def _holding(self, series: Series, y: int) -> int:
        key = (series.index, y)
        h = self.holding_ids.get(key)
        if h is None:
            h = self.holding_ids[key] = self._add_holdings([series.index], [y])
        return h

    def _add_holdings(self, series: list[int], symbols: list[int]) -> int:
        """Rows for new holdings of series[i] in symbols[i], with room for them in the symbols' heap runs;
        the first one's row (the caller maps them in holding_ids)."""
        first = self._row("holdings", len(series))
        rows = slice(first, first + len(series))
        self.hi[rows, L.H_SERIES] = series
        self.hi[rows, L.H_SYMBOL] = symbols
        yi = self.yi
        np.add.at(yi[:, L.Y_HOLDINGS], symbols, 1)
        for y in set(symbols):
            if yi[y, L.Y_HOLDINGS] > yi[y, L.Y_CAP]:
                self._grow_holders(y)
        return first

    def _grow_holders(self, y: int) -> None:
        """A heap run for symbol y of at least twice the size: moved to the heap's free end, or all runs packed
        into a larger heap."""
        yi, hi = self.yi, self.hi
        start, count, cap, holdings = (int(v) for v in yi[y, [L.Y_START, L.Y_COUNT, L.Y_CAP, L.Y_HOLDINGS]])
        new_cap = max(8, 2 * cap, holdings)
        heap = self.g[L.G_WIDTH :].reshape(-1, L.HEAP_WIDTH)
        end = int(self.g[L.G_HEAP_END])
        if end + new_cap <= len(heap):
            heap[end : end + count] = heap[start : start + count]
            hi[heap[end : end + count, 0], L.H_SLOT] = np.arange(end, end + count)
            yi[y, L.Y_START], yi[y, L.Y_CAP] = end, new_cap
            self.g[L.G_HEAP_END] = end + new_cap
            return
        symbols = self.counts["symbols"]
        caps = yi[:symbols, L.Y_CAP].copy()
        caps[y] = new_cap
        starts = np.concatenate([[0], np.cumsum(caps)[:-1]])
        total = int(caps.sum())
        packed = np.zeros((2 * total, L.HEAP_WIDTH), L.INT)  # half free: the next runs to grow move there
        for z in np.flatnonzero(yi[:symbols, L.Y_COUNT]).tolist():
            old, new, n = int(yi[z, L.Y_START]), int(starts[z]), int(yi[z, L.Y_COUNT])
            packed[new : new + n] = heap[old : old + n]
            hi[packed[new : new + n, 0], L.H_SLOT] = np.arange(new, new + n)
        yi[:symbols, L.Y_START], yi[:symbols, L.Y_CAP] = starts, caps
        self.g = np.concatenate([self.g[: L.G_WIDTH], packed.reshape(-1)])
        self.g[L.G_HEAP_END] = total

    def _position(self, key: tuple[str, str, str]) -> int:
        """The row of a new position (its book's capital counts from event `_event` on, as the caller set it)."""
        ids: list[int | None] = [None]
        self._open_positions([key], ids, [self._event])
        return ids[0]  # type: ignore[return-value]

    def _open_positions(self, keys: list[tuple[str, str, str]], ids: list[int | None], rows: list[int] | None) -> None:
        """Positions for the (account, strategy, symbol) keys whose ids are None (each new key once, at its first
        event: rows[j], or j), with their books, symbols and chain holdings; their rows into ids."""
        opened: dict[tuple[str, str, str], int] = {}
        books, symbols, chains = [], [], []
        new_series: list[int] = []
        new_symbols: list[int] = []
        next_p, next_h = self.counts["positions"], self.counts["holdings"]
        holding_ids = self.holding_ids
        for j, p in enumerate(ids):
            if p is not None:
                continue
            key = keys[j]
            p = opened.get(key)
            if p is None:
                account, strategy, symbol = key
                self._event = j if rows is None else rows[j]
                book = self._book(account, strategy)
                y = self._symbol(symbol)
                p = opened[key] = self.position_ids[key] = book.positions[symbol] = next_p
                next_p += 1
                books.append(book.chain[0].index)
                symbols.append(y)
                for series in book.chain:
                    h = holding_ids.get((series.index, y))
                    if h is None:
                        h = holding_ids[(series.index, y)] = next_h
                        next_h += 1
                        new_series.append(series.index)
                        new_symbols.append(y)
                    chains.append(h)
            ids[j] = p
        if new_series:
            self._add_holdings(new_series, new_symbols)
        first = self._row("positions", len(opened))
        at = slice(first, first + len(opened))
        self.pi[at, L.P_BOOK] = books
        self.pi[at, L.P_SYMBOL] = symbols
        self.pi[at, L.P_H0 : L.P_H0 + 4] = np.array(chains, L.INT).reshape(-1, 4)

    @staticmethod
    def _trip(fill: Fill, tf: list[float], ti: list[int]) -> RoundTrip:
        return RoundTrip(
            account=fill.account,
            strategy=fill.strategy,
            symbol=fill.symbol,
            direction=ti[L.T_DIRECTION],
            entry_ts=ti[L.T_ENTRY_TS],
            exit_ts=fill.ts,
            entry_price=tf[L.T_ENTRY_PRICE],
            exit_price=tf[L.T_EXIT_PRICE],
            qty=tf[L.T_QTY],
            gross_pnl=tf[L.T_GROSS],
            fees=tf[L.T_FEES],
            net_pnl=tf[L.T_NET],
        )
