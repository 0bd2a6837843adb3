"""The engine as it was in pure Python (object graph, one fill at a time): the oracle of the kernel.

collector/engine/kernel.py must give the same results bit for bit (tests/engine/test_kernel_equals_reference.py
and the benchmark's check). Kept exactly as it ran before the kernel, plus `max_dd_pct`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from collector.engine.daily import DailyChanges, DayBasis, period_day
from collector.engine.metrics import MinSample
from collector.engine.positions import PNL_TOL, QTY_TOL, RoundTrip
from collector.engine.series import ALL, LEVELS, Holding, Series
from collector.model import Fill, Mark

_ZERO_Q = 1e-12


class RefSeries:
    """The old Series: plain attributes. `row` is the production Series.row, reading the same names."""

    __slots__ = (
        "account",
        "accounts",
        "capital",
        "daily",
        "dd_pct",
        "fees",
        "fills",
        "gross_losses",
        "gross_wins",
        "holdings",
        "level",
        "loss_streak",
        "losses",
        "max_dd",
        "net_sum",
        "peak",
        "realized",
        "slip_notional",
        "slip_weighted",
        "strategy",
        "trades",
        "unrealized",
        "volume",
        "wins",
    )  # fmt: skip

    def __init__(self, level: str, account: str, strategy: str) -> None:
        self.level, self.account, self.strategy = level, account, strategy
        self.accounts: set[str] = set()
        self.holdings: dict[str, Holding] = {}
        self.realized = self.fees = self.unrealized = 0.0
        self.peak = self.max_dd = self.dd_pct = self.capital = 0.0
        self.trades = self.wins = self.losses = self.loss_streak = self.fills = 0
        self.gross_wins = self.gross_losses = self.net_sum = 0.0
        self.volume = self.slip_notional = self.slip_weighted = 0.0
        self.daily = DailyChanges()

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.level, self.account, self.strategy)

    @property
    def equity(self) -> float:
        return self.realized + self.unrealized - self.fees

    @property
    def exposure(self) -> tuple[float, float]:
        return sum((abs(h.v) for h in self.holdings.values()), 0.0), sum((h.v for h in self.holdings.values()), 0.0)

    @property
    def max_dd_pct(self) -> float:
        return self.dd_pct if self.capital > 0 else math.nan

    def record_trip(self, net_pnl: float) -> None:
        self.trades += 1
        self.net_sum += net_pnl
        if net_pnl > 0:
            self.wins += 1
            self.gross_wins += net_pnl
            self.loss_streak = 0
        elif net_pnl < 0:
            self.losses += 1
            self.gross_losses += net_pnl
            self.loss_streak += 1
        else:
            self.loss_streak = 0

    def row(self, capital_base: float, clock_ns: int, basis: DayBasis, sample: MinSample) -> dict[str, Any]:
        return Series.row(self, capital_base, clock_ns, basis, sample)  # type: ignore[arg-type]


@dataclass(slots=True)
class _Cycle:
    """A round trip being built."""

    direction: int
    entry_ts: int
    entry_qty: float = 0.0
    entry_notional: float = 0.0
    exit_qty: float = 0.0
    exit_notional: float = 0.0
    gross: float = 0.0
    fees: float = 0.0


class Position:
    """Open lots of one book in one symbol. `q` = signed Σ qty·multiplier, `c` = signed Σ qty·price·multiplier."""

    __slots__ = ("_cycle", "c", "direction", "lots", "q")

    def __init__(self) -> None:
        # [qty, price, multiplier, original qty], all on `direction`'s side
        self.lots: deque[list[float]] = deque()
        self.direction = 0
        self.q = 0.0
        self.c = 0.0
        self._cycle: _Cycle | None = None

    def apply(self, fill: Fill) -> tuple[float, RoundTrip | None]:
        """Book the fill; returns its realized PnL (gross of fees) and the round trip it completed."""
        sign = 1 if fill.side == "buy" else -1
        qty, price, fee = fill.qty, fill.price, fill.fee
        realized = 0.0
        trip = None
        remaining = qty
        if self.direction == -sign:
            remaining, realized, closed = self._close(qty, price)
            cycle = self._cycle
            assert cycle is not None
            cycle.exit_qty += closed
            cycle.exit_notional += closed * price
            cycle.gross += realized
            cycle.fees += fee * closed / qty
            if not self.lots:
                trip = self._finish(fill)
        if remaining > 0:
            if self.direction == 0:
                self.direction = sign
                self._cycle = _Cycle(sign, fill.ts)
            cycle = self._cycle
            assert cycle is not None
            mult = fill.multiplier
            self.lots.append([remaining, price, mult, remaining])
            self.q += sign * remaining * mult
            self.c += sign * remaining * price * mult
            cycle.entry_qty += remaining
            cycle.entry_notional += remaining * price
            cycle.fees += fee * remaining / qty
        return realized, trip

    def _close(self, qty: float, price: float) -> tuple[float, float, float]:
        """Close up to `qty` FIFO; returns (quantity left over, realized PnL, quantity closed).

        The closed quantity is summed from the lots, not taken as qty − left over: closing a 1e-9 lot
        with a 1e8 fill leaves 1e8 over in float, which would make the closed quantity 0.
        """
        lots, direction = self.lots, self.direction
        remaining, realized, closed = qty, 0.0, 0.0
        while lots and remaining > 0:
            lot = lots[0]
            lot_qty, lot_price, mult, original = lot
            take = remaining
            if lot_qty <= remaining * (1 + QTY_TOL) or lot_qty - remaining <= original * QTY_TOL:
                take = lot_qty
            realized += (price - lot_price) * take * mult * direction
            self.q -= direction * take * mult
            self.c -= direction * take * lot_price * mult
            remaining -= take
            closed += take
            if take == lot_qty:
                lots.popleft()
            else:
                lot[0] = lot_qty - take
        closed = min(closed, qty)  # a dust lot closed whole: its fee share stays at most the fill's fee
        if remaining <= qty * QTY_TOL:
            remaining = 0.0
        if not lots:
            self.q = self.c = 0.0  # exactly flat: no float residue in unrealized PnL
        return remaining, realized, closed

    def _finish(self, fill: Fill) -> RoundTrip:
        cycle = self._cycle
        assert cycle is not None
        self.direction = 0
        self._cycle = None
        net = cycle.gross - cycle.fees
        if abs(net) <= PNL_TOL * (cycle.entry_notional + cycle.exit_notional) * fill.multiplier:
            net = 0.0
        return RoundTrip(
            account=fill.account,
            strategy=fill.strategy,
            symbol=fill.symbol,
            direction=cycle.direction,
            entry_ts=cycle.entry_ts,
            exit_ts=fill.ts,
            entry_price=cycle.entry_notional / cycle.entry_qty,
            exit_price=cycle.exit_notional / cycle.exit_qty,
            qty=cycle.entry_qty,
            gross_pnl=cycle.gross,
            fees=cycle.fees,
            net_pnl=net,
        )


@dataclass
class FillResult:
    realized_pnl: float
    round_trip: RoundTrip | None


@dataclass
class _Book:
    chain: tuple[RefSeries, RefSeries, RefSeries, RefSeries]
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
        self.sample = MinSample()
        # False: positions and realized PnL per fill only (`stratmon ingest`): no series, marks or equity
        self.revalue = revalue
        self.series: dict[tuple[str, str, str], RefSeries] = {}
        self.books: dict[tuple[str, str], _Book] = {}
        self.marks: dict[str, float] = {}
        self.streamed_marks: set[str] = set()  # symbols whose mark comes from the marks stream only
        self.holders: dict[str, dict[RefSeries, Holding]] = {}
        self.clock_ns = 0
        self.touched: set[RefSeries] = set()  # series changed by fills since `take_changed`
        self.dirty_symbols: set[str] = set()  # symbols whose mark moved since `take_changed`
        self.portfolio = self._series("portfolio", ALL, ALL)

    # ---- input ----------------------------------------------------------------------------
    def on_fill(self, fill: Fill) -> FillResult:
        if fill.ts > self.clock_ns:
            self.clock_ns = fill.ts
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
        flat: list[tuple[RefSeries, Holding]] = []  # holdings this fill closed: revalued to 0, then dropped
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

    def run(self, fills: Iterable[Fill]) -> None:
        for fill in fills:
            self.on_fill(fill)

    # ---- output ---------------------------------------------------------------------------
    def capital_base(self, series: RefSeries) -> float:
        return sum(self.capital_by_account.get(a, self.default_capital) for a in series.accounts)

    def row(self, series: RefSeries) -> dict[str, Any]:
        return series.row(self.capital_base(series), self.clock_ns, self.day_basis, self.sample)

    def rows(self, level: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """Rows by level (the `stratmon report` JSON shape), sorted by account then strategy."""
        out: dict[str, list[dict[str, Any]]] = {name: [] for name in LEVELS if level in (None, name)}
        for key in sorted(self.series):
            if key[0] in out and self.series[key].fills:
                out[key[0]].append(self.row(self.series[key]))
        return out

    def take_changed(self) -> set[RefSeries]:
        """RefSeries changed since the last call (what a live writer flushes)."""
        changed = self.touched
        for symbol in self.dirty_symbols:
            changed.update(self.holders[symbol])
        self.touched, self.dirty_symbols = set(), set()
        return changed

    # ---- internals ------------------------------------------------------------------------
    def _series(self, level: str, account: str, strategy: str) -> RefSeries:
        key = (level, account, strategy)
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = RefSeries(level, account, strategy)
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
                series.capital = self.capital_base(series)
            book = self.books[(account, strategy)] = _Book(chain)
        return book

    def _set_mark(
        self, symbol: str, mark: float, ts: int, filled: tuple[RefSeries, ...], flat: list[tuple[RefSeries, Holding]]
    ) -> None:
        """Revalue the symbol's holders (plus holdings a fill just closed) and evaluate their equity.

        With an unchanged mark only the `filled` series (whose quantities moved) need it.

        This is the engine's hot loop (a symbol has tens of holders in a real book) and the one
        place where equity is observed: drawdown bookkeeping and the daily change.
        """
        holders = self.holders.setdefault(symbol, {})
        if mark == self.marks.get(symbol):
            pairs: Iterable[tuple[RefSeries, Holding]] = [(s, holders[s]) for s in filled if s in holders]
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
            else:
                if series.peak - equity > series.max_dd:
                    series.max_dd = series.peak - equity
                capital = series.capital
                if capital > 0 and (series.peak - equity) / (capital + series.peak) > series.dd_pct:
                    series.dd_pct = (series.peak - equity) / (capital + series.peak)
            daily = series.daily
            if day > daily.day:
                daily.observe(day, equity, basis)
            else:
                daily.last = equity
