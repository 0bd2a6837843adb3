"""The incremental engine: each fill updates its book and the three aggregates above it.

Cost per fill does not depend on history length: FIFO work is amortized O(1) per lot, the four
series are updated in place, and a price change revalues only the series that hold the symbol.
Every series' equity is evaluated after each event that changes it (drawdown, daily changes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from collector.engine.daily import DayBasis, period_day
from collector.engine.metrics import MinSample
from collector.engine.positions import Position, RoundTrip
from collector.engine.revise import BookLog
from collector.engine.series import ALL, LEVELS, Holding, Series
from collector.model import Fill, Mark

_ZERO_Q = 1e-12  # aggregate quantities this close to zero are flat (float sums of offsetting books)


@dataclass
class FillResult:
    realized_pnl: float
    round_trip: RoundTrip | None


@dataclass(slots=True)
class BatchResult:
    """What `on_events` did: realized PnL per event (0.0 for a mark) and the round trips, by event index."""

    realized: list[float]
    trips: dict[int, RoundTrip]


@dataclass
class _Book:
    chain: tuple[Series, Series, Series, Series]  # book, strategy, account, portfolio
    positions: dict[str, Position] = field(default_factory=dict)


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
        self.day_basis: DayBasis = day_basis  # which days are Sharpe/Sortino periods (engine/daily.py)
        self.sample = MinSample()  # the sample Sharpe and the trade ratios need (config `metrics.min_*`)
        # the last fills of each book, for busts and corrections (engine/revise.py); 0 = none kept
        self.log: BookLog | None = BookLog(bust_window) if bust_window > 0 else None
        # False: positions and realized PnL per fill only (`stratmon ingest`): no series, marks or equity
        self.revalue = revalue
        self.series: dict[tuple[str, str, str], Series] = {}
        self.books: dict[tuple[str, str], _Book] = {}
        self.marks: dict[str, float] = {}
        self.streamed_marks: set[str] = set()  # symbols whose mark comes from the marks stream only
        self.holders: dict[str, dict[Series, Holding]] = {}
        self.clock_ns = 0
        self.touched: set[Series] = set()  # series changed by fills since `take_changed`
        self.dirty_symbols: set[str] = set()  # symbols whose mark moved since `take_changed`
        self.portfolio = self._series("portfolio", ALL, ALL)

    # ---- input ----------------------------------------------------------------------------
    def on_fill(self, fill: Fill) -> FillResult:
        if fill.ts > self.clock_ns:
            self.clock_ns = fill.ts
        if self.log is not None:
            self.log.add(fill, self)
        book = self._book(fill.account, fill.strategy)
        symbol = fill.symbol
        position = book.positions.get(symbol)
        if position is None:
            position = book.positions[symbol] = Position()
        old_q, old_c, was_open = position.q, position.c, bool(position.lots)
        realized, trip = position.apply(fill)
        if not self.revalue:
            return FillResult(realized, trip)
        dq, dc = position.q - old_q, position.c - old_c
        opened = bool(position.lots) - was_open  # +1 the book opened, -1 it went flat, else 0
        notional = fill.qty * fill.price * fill.multiplier
        slippage = fill.slippage_bps
        fee = fill.fee
        holders = self.holders.setdefault(symbol, {})
        flat: list[tuple[Series, Holding]] = []  # holdings this fill closed: revalued to 0, then dropped
        for series in book.chain:
            series.realized += realized
            series.fees += fee
            series.fills += 1
            series.volume += notional
            if slippage is not None:
                series.slip_weighted += slippage * notional
                series.slip_notional += notional
            if trip is not None:
                series.record_trip(trip.net_pnl)
            holding = series.holdings.get(symbol)
            if holding is None:
                holding = series.holdings[symbol] = Holding()
            cost_change = dc
            if series is book.chain[0]:
                holding.q, holding.c = position.q, position.c  # exact, so a flat book is exactly flat
            else:
                holding.q += dq
                holding.c += dc
                holding.books += opened
                if holding.books == 0:  # all its books flat: exactly flat, the float residue dropped
                    cost_change -= holding.c
                    holding.q = holding.c = 0.0
                elif -_ZERO_Q < holding.q < _ZERO_Q:
                    holding.q = 0.0
            series.unrealized -= cost_change
            if holding.q:
                holders[series] = holding
            else:
                holders.pop(series, None)
                flat.append((series, holding))
        self.touched.update(book.chain)
        mark = self.marks[symbol] if symbol in self.streamed_marks else fill.price
        self._set_mark(symbol, mark, fill.ts, book.chain, flat)
        for series, holding in flat:
            if series is book.chain[0] or holding.books == 0:
                del series.holdings[symbol]
                if not series.holdings:
                    series.unrealized = 0.0  # no float residue once all flat
        return FillResult(realized, trip)

    def on_mark(self, mark: Mark) -> None:
        if mark.ts > self.clock_ns:
            self.clock_ns = mark.ts
        self.streamed_marks.add(mark.symbol)
        self._set_mark(mark.symbol, mark.price, mark.ts, (), [])

    def on_events(self, events: Sequence[Fill | Mark]) -> BatchResult:
        """A batch of fills (action "fill") and marks, in order: the hot path of `run`."""
        realized: list[float] = []
        trips: dict[int, RoundTrip] = {}
        for index, event in enumerate(events):
            if type(event) is Fill:
                result = self.on_fill(event)
                realized.append(result.realized_pnl)
                if result.round_trip is not None:
                    trips[index] = result.round_trip
            else:
                self.on_mark(event)  # type: ignore[arg-type]
                realized.append(0.0)
        return BatchResult(realized, trips)

    def run(self, fills: Iterable[Fill]) -> None:
        for fill in fills:
            self.on_fill(fill)

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
        changed = self.touched
        for symbol in self.dirty_symbols:
            changed.update(self.holders[symbol])
        self.touched, self.dirty_symbols = set(), set()
        return changed

    # ---- internals ------------------------------------------------------------------------
    def _series(self, level: str, account: str, strategy: str) -> Series:
        key = (level, account, strategy)
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = Series(level, account, strategy)
        return series

    def _book(self, account: str, strategy: str) -> _Book:
        book = self.books.get((account, strategy))
        if book is None:
            chain = (
                self._series("book", account, strategy),
                self._series("strategy", ALL, strategy),
                self._series("account", account, ALL),
                self.portfolio,
            )
            for series in chain:
                series.accounts.add(account)
            book = self.books[(account, strategy)] = _Book(chain)
        return book

    def _set_mark(
        self, symbol: str, mark: float, ts: int, filled: tuple[Series, ...], flat: list[tuple[Series, Holding]]
    ) -> None:
        """Revalue the symbol's holders (plus holdings a fill just closed) and evaluate their equity.

        With an unchanged mark only the `filled` series (whose quantities moved) need it.

        This is the engine's hot loop (a symbol has tens of holders in a real book) and the one
        place where equity is observed: drawdown bookkeeping and the daily change.
        """
        holders = self.holders.setdefault(symbol, {})
        if mark == self.marks.get(symbol):
            pairs: Iterable[tuple[Series, Holding]] = [(s, holders[s]) for s in filled if s in holders]
        else:
            self.marks[symbol] = mark
            self.dirty_symbols.add(symbol)
            pairs = holders.items()
        basis = self.day_basis
        day = period_day(ts, basis)
        for series, holding in chain(pairs, flat):
            old = holding.v
            value = holding.q * mark
            holding.v = value
            delta = value - old
            unrealized = series.unrealized + delta
            series.unrealized = unrealized
            equity = series.realized - series.fees + unrealized
            if equity > series.peak:
                series.peak = equity
            elif series.peak - equity > series.max_dd:
                series.max_dd = series.peak - equity
            daily = series.daily
            if day > daily.day:
                daily.observe(day, equity, basis)
            else:
                daily.last = equity
