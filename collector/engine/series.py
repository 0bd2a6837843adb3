"""One perf series (a book, or a strategy/account/portfolio aggregate) and its running state."""

from __future__ import annotations

import math
from typing import Any

from collector.engine import metrics
from collector.engine.daily import PERIODS_PER_YEAR, DailyChanges, DayBasis, period_day
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


class Holding:
    """A series' open position in one symbol: q = signed qty·multiplier, c = signed cost, v = q × mark.

    An aggregate's holding nets its books' positions in the symbol, so its exposure is per-symbol net;
    `books` counts its books with open lots, so once all are flat it is exactly flat (no float residue).
    """

    __slots__ = ("books", "c", "q", "v")

    def __init__(self) -> None:
        self.q = 0.0
        self.c = 0.0
        self.v = 0.0
        self.books = 0


class Series:
    __slots__ = (
        "account",
        "accounts",
        "daily",
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
    )

    def __init__(self, level: str, account: str, strategy: str) -> None:
        self.level, self.account, self.strategy = level, account, strategy
        self.accounts: set[str] = set()  # whose capital forms this series' base
        self.holdings: dict[str, Holding] = {}
        self.realized = self.fees = self.unrealized = 0.0
        self.peak = self.max_dd = 0.0
        self.trades = self.wins = self.losses = self.loss_streak = self.fills = 0
        self.gross_wins = self.gross_losses = self.net_sum = 0.0
        self.volume = self.slip_notional = self.slip_weighted = 0.0
        self.daily = DailyChanges()

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.level, self.account, self.strategy)

    @property
    def equity(self) -> float:
        return metrics.equity(self.realized, self.unrealized, self.fees)

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
            "gross_exposure": sum((abs(h.v) for h in self.holdings.values()), 0.0),
            "net_exposure": sum((h.v for h in self.holdings.values()), 0.0),
            "drawdown": drawdown,
            "max_drawdown": self.max_dd,
            "drawdown_pct": metrics.drawdown_pct(drawdown, capital_base, self.peak),
            "max_drawdown_pct": getattr(self, "max_dd_pct", None),  # engine state (issue 13) once it lands
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
