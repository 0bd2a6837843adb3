"""One perf series (a book, or a strategy/account/portfolio aggregate) and its running state."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol

from collector.engine import layout, metrics
from collector.engine.daily import PERIODS_PER_YEAR, DailyChanges, DayBasis, Moments, period_day
from collector.engine.metrics import MinSample

DEFAULT_SAMPLE = MinSample()  # what `metrics.min_days` / `metrics.min_round_trips` default to
LEVELS = ("portfolio", "account", "strategy", "book")
ALL = "_all"
METRIC_FIELDS = (
    "nav",
    "equity",
    "realized_pnl",
    "unrealized_pnl",
    "fees",
    "gross_exposure",
    "net_exposure",
    "drawdown",
    "max_drawdown",
    "drawdown_pct",
    "max_drawdown_pct",
    "return_cum",
    "trades",
    "wins",
    "losses",
    "win_rate",
    "profit_factor",
    "expectancy",
    "avg_win",
    "avg_loss",
    "payoff_ratio",
    "loss_streak",
    "sharpe",
    "sortino",
    "slippage_bps_avg",
    "fills",
    "volume",
)


if TYPE_CHECKING:
    import numpy as np


class SeriesState(Protocol):
    """What a Series reads: the engine's series arrays and its holdings."""

    sf: np.ndarray
    si: np.ndarray

    def holdings_of(self, index: int) -> dict[str, Holding]: ...

    def exposure_of(self, index: int) -> tuple[float, float]: ...


class Holding:
    """A series' open position in one symbol: q = signed qty·multiplier, c = signed cost, v = q × mark.

    An aggregate's holding nets its books' positions in the symbol, so its exposure is per-symbol net;
    `books` counts its books with open lots, so once all are flat it is exactly flat (no float residue).
    """

    __slots__ = ("books", "c", "q", "v")

    def __init__(self, q: float = 0.0, c: float = 0.0, v: float = 0.0, books: int = 0) -> None:
        self.q = q
        self.c = c
        self.v = v
        self.books = books


class _FloatColumn:
    """A float field of the series table (`sf`), read and written through the engine's arrays."""

    def __init__(self, column: int) -> None:
        self.column = column

    def __get__(self, series: Series, owner: type | None = None) -> float:
        return float(series.state.sf[series.index, self.column])

    def __set__(self, series: Series, value: float) -> None:
        series.state.sf[series.index, self.column] = value


class _CashColumn(_FloatColumn):
    """Realized PnL or fees: setting either also sets S_CASH = realized − fees (what equity adds to)."""

    def __set__(self, series: Series, value: float) -> None:
        sf, i = series.state.sf, series.index
        sf[i, self.column] = value
        sf[i, layout.S_CASH] = sf[i, layout.S_REALIZED] - sf[i, layout.S_FEES]


class _IntColumn:
    """An integer field of the series table (`si`)."""

    def __init__(self, column: int) -> None:
        self.column = column

    def __get__(self, series: Series, owner: type | None = None) -> int:
        return int(series.state.si[series.index, self.column])

    def __set__(self, series: Series, value: int) -> None:
        series.state.si[series.index, self.column] = value


class Series:
    """A perf series: row `index` of the engine's columnar state (collector/engine/layout.py).

    One object per key for the engine's life (hashable by identity); its fields read the arrays,
    so they always show the engine's current state. `holdings` and `daily` are snapshots.
    """

    __slots__ = ("account", "accounts", "index", "level", "state", "strategy")

    realized = _CashColumn(layout.S_REALIZED)
    fees = _CashColumn(layout.S_FEES)
    unrealized = _FloatColumn(layout.S_UNREALIZED)
    peak = _FloatColumn(layout.S_PEAK)
    max_dd = _FloatColumn(layout.S_MAX_DD)
    volume = _FloatColumn(layout.S_VOLUME)
    slip_weighted = _FloatColumn(layout.S_SLIP_WEIGHTED)
    slip_notional = _FloatColumn(layout.S_SLIP_NOTIONAL)
    net_sum = _FloatColumn(layout.S_NET_SUM)
    gross_wins = _FloatColumn(layout.S_GROSS_WINS)
    gross_losses = _FloatColumn(layout.S_GROSS_LOSSES)
    trades = _IntColumn(layout.S_TRADES)
    wins = _IntColumn(layout.S_WINS)
    losses = _IntColumn(layout.S_LOSSES)
    loss_streak = _IntColumn(layout.S_LOSS_STREAK)
    fills = _IntColumn(layout.S_FILLS)

    def __init__(self, state: SeriesState, index: int, level: str, account: str, strategy: str) -> None:
        self.state, self.index = state, index
        self.level, self.account, self.strategy = level, account, strategy
        self.accounts: set[str] = set()  # whose capital forms this series' base

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.level, self.account, self.strategy)

    @property
    def equity(self) -> float:
        return metrics.equity(self.realized, self.unrealized, self.fees)

    @property
    def max_dd_pct(self) -> float:
        """max over events of (peak − equity) / (capital base + peak): drawdown of peak NAV; NaN without capital."""
        sf = self.state.sf
        return float(sf[self.index, layout.S_MAX_DD_PCT]) if sf[self.index, layout.S_CAPITAL] > 0 else math.nan

    @property
    def holdings(self) -> dict[str, Holding]:
        """Open holdings by symbol, in the order they were opened (a copy)."""
        return self.state.holdings_of(self.index)

    @property
    def exposure(self) -> tuple[float, float]:
        """(gross, net) exposure: Σ |v|, Σ v over the holdings (without copying them)."""
        return self.state.exposure_of(self.index)

    @property
    def daily(self) -> DailyChanges:
        """The daily-change state (a copy)."""
        sf, si, i = self.state.sf, self.state.si, self.index
        day = int(sf[i, layout.S_DAY])
        closed = None
        if day >= 0:
            closed = Moments(
                int(si[i, layout.S_N]),
                float(sf[i, layout.S_MEAN]),
                float(sf[i, layout.S_M2]),
                float(sf[i, layout.S_DOWN_SQ]),
            )
        return DailyChanges(day, float(sf[i, layout.S_PREV_CLOSE]), float(sf[i, layout.S_LAST]), closed)

    def row(
        self, capital_base: float, clock_ns: int, basis: DayBasis = "trading", sample: MinSample = DEFAULT_SAMPLE
    ) -> dict[str, Any]:
        """All metrics of the `perf` schema (docs/metrics.md), undefined ones as None.

        Sharpe/Sortino are on the `basis` days and need `sample.days` of them; the trade ratios need
        `sample.round_trips` closed round trips (None before: too small a sample to mean anything).
        """
        equity = self.equity
        drawdown = self.peak - equity
        moments = self.daily.as_of(period_day(clock_ns, basis), basis)
        year = PERIODS_PER_YEAR[basis]
        base = capital_base if capital_base > 0 else math.nan  # returns = daily change / capital base
        days = sample.enough_days(moments.n)
        trips = sample.enough_trips(self.trades)
        avg_win = metrics.average_win(self.gross_wins, self.wins) if trips else None
        avg_loss = metrics.average_loss(self.gross_losses, self.losses) if trips else None
        values: dict[str, Any] = {
            "level": self.level,
            "account": self.account,
            "strategy": self.strategy,
            "nav": metrics.nav(equity, capital_base),
            "equity": equity,
            "realized_pnl": self.realized,
            "unrealized_pnl": self.unrealized,
            "fees": self.fees,
            "gross_exposure": self.exposure[0],
            "net_exposure": self.exposure[1],
            "drawdown": drawdown,
            "max_drawdown": self.max_dd,
            "drawdown_pct": metrics.drawdown_pct(drawdown, capital_base, self.peak),
            "max_drawdown_pct": self.max_dd_pct,
            "return_cum": metrics.return_cum(equity, capital_base),
            "trades": self.trades,
            "wins": self.wins,
            "losses": self.losses,
            "win_rate": metrics.win_rate(self.wins, self.trades) if trips else None,
            "profit_factor": metrics.profit_factor(self.gross_wins, self.gross_losses) if trips else None,
            "expectancy": metrics.expectancy(self.net_sum, self.trades) if trips else None,
            "avg_win": avg_win,
            "avg_loss": avg_loss,
            "payoff_ratio": metrics.payoff_ratio(avg_win, avg_loss),
            "loss_streak": self.loss_streak,
            "sharpe": metrics.sharpe_ratio(moments.mean / base, moments.std / base, moments.n, year) if days else None,
            "sortino": (
                metrics.sortino_ratio(moments.mean / base, moments.downside / base, moments.n, year) if days else None
            ),
            "slippage_bps_avg": metrics.weighted_mean(self.slip_weighted, self.slip_notional),
            "fills": self.fills,
            "volume": self.volume,
        }
        for name, value in values.items():
            if isinstance(value, float):
                values[name] = metrics.finite_or_none(value)
        return values
