"""One series' tear-sheet figures: the engine's `perf` row plus the statistics of its daily returns.

Sharpe, Sortino, max drawdown, win rate, profit factor, fees, volume and slippage are the engine's
own numbers (the row `stratmon report` prints); the rest is computed from the same daily returns
by collector/tearsheet_stats.py. Formatting is the renderer's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collector.engine.engine import Engine
from collector.engine.series import Series
from collector.tearsheet_history import History, Returns
from collector.tearsheet_stats import (
    Drawdown,
    annual_turnover,
    best,
    cagr,
    calmar,
    conditional_value_at_risk,
    exposure,
    gain_to_pain,
    kurtosis,
    longest_run,
    monthly_returns,
    recovery_factor,
    skew,
    slippage_cost,
    tail_ratio,
    value_at_risk,
    volatility,
    win_days,
    worst,
    worst_drawdowns,
)


@dataclass
class Summary:
    """Headline figures of one series (fractions, not percent; None = undefined or too small a sample)."""

    series: Series
    row: dict[str, Any]
    returns: Returns
    start_ns: int
    end_ns: int
    cagr: float | None
    volatility: float | None
    calmar: float | None
    max_drawdown_pct: float | None
    max_drawdown_days: float | None  # the deepest drawdown's start to recovery (or to now)
    longest_drawdown_days: float | None
    avg_drawdown_pct: float | None
    avg_drawdown_days: float | None
    recovery_factor: float | None
    skew: float | None
    kurtosis: float | None
    var: float | None
    cvar: float | None
    best: float | None
    worst: float | None
    best_month: float | None
    worst_month: float | None
    win_days: float | None
    win_streak: int  # most consecutive days with a gain
    loss_streak: int
    tail_ratio: float | None
    gain_to_pain: float | None
    exposure: float | None
    turnover: float | None
    slippage_cost: float | None
    drawdowns: list[Drawdown]  # the worst five, deepest first

    @property
    def name(self) -> str:
        s = self.series
        return {"portfolio": "portfolio", "account": s.account}.get(s.level, s.strategy)


def summarize(engine: Engine, history: History, series: Series) -> Summary:
    """The figures of `series` at the engine clock (the series must have been observed by `history`)."""
    row = engine.row(series)
    returns = history.returns(engine, series)
    r, year, capital = returns.values, returns.periods_per_year, returns.capital
    path = history.paths[series.key]
    every = path.drawdowns.all()
    end = engine.clock_ns
    deepest = max(every, key=lambda d: d.depth, default=None)
    fractions = [d.deepest for d in every]
    # the engine's max drawdown in % of peak NAV once it carries one; the same rule over this path before
    max_pct = row.get("max_drawdown_pct")
    if max_pct is None:
        max_pct = max(fractions, default=0.0)
    growth = cagr(r, year)
    months = [v for year_months in monthly_returns(returns.days, r).values() for v in year_months.values()]
    return Summary(
        series=series,
        row=row,
        returns=returns,
        start_ns=path.first_ns,
        end_ns=end,
        cagr=growth,
        volatility=volatility(r, year),
        calmar=calmar(growth, max_pct),
        max_drawdown_pct=max_pct,
        max_drawdown_days=deepest.days(end) if deepest is not None else None,
        longest_drawdown_days=max((d.days(end) for d in every), default=None),
        avg_drawdown_pct=sum(fractions) / len(fractions) if fractions else None,
        avg_drawdown_days=sum(d.days(end) for d in every) / len(every) if every else None,
        recovery_factor=recovery_factor(row["equity"], row["max_drawdown"]),
        skew=skew(r),
        kurtosis=kurtosis(r),
        var=value_at_risk(r),
        cvar=conditional_value_at_risk(r),
        best=best(r),
        worst=worst(r),
        best_month=max(months, default=None),
        worst_month=min(months, default=None),
        win_days=win_days(r),
        win_streak=longest_run(r > 0),
        loss_streak=longest_run(r < 0),
        tail_ratio=tail_ratio(r),
        gain_to_pain=gain_to_pain(r),
        exposure=exposure(r),
        turnover=annual_turnover(row["volume"], capital, len(r), year),
        slippage_cost=slippage_cost(series.slip_weighted, series.slip_notional),
        drawdowns=worst_drawdowns(every),
    )


def summaries(engine: Engine, history: History) -> dict[str, list[Summary]]:
    """Summaries of the portfolio, accounts and strategies that have fills, by level, in `engine.rows` order."""
    history.finish(engine)
    out: dict[str, list[Summary]] = {"portfolio": [], "account": [], "strategy": []}
    for key in sorted(engine.series):
        series = engine.series[key]
        if key[0] in out and series.fills and key in history.paths:
            out[key[0]].append(summarize(engine, history, series))
    return out
