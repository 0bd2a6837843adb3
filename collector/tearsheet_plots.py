"""The tear sheet's figures: matplotlib drawn to inline SVG (no scripts, no network).

Each function takes figures already computed (collector/tearsheet_summary.py, tearsheet_stats.py)
and returns one `<svg>` element.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from statistics import NormalDist
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np

from collector.alerts.evaluator import AlertEvent
from collector.model import NS
from collector.tearsheet_history import HOUR_NS, Change, SeriesPath
from collector.tearsheet_stats import (
    correlation,
    day_date,
    rolling_sharpe,
    rolling_volatility,
    rolling_window,
)
from collector.tearsheet_summary import Summary

matplotlib.rcParams["svg.fonttype"] = "none"  # text as <text>, not glyph paths: a third of the time and size

HIGHLIGHTED = 5  # best and worst strategies drawn in colour, the rest grey
SEVERITY_COLORS = {"critical": "#d62728", "warning": "#ff7f0e", "info": "#1f77b4"}
WIDE = 11.0  # inches: one column of the page
MAX_POINTS = 600  # per line


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _when(ts_ns: int) -> float:
    """matplotlib's date number of an epoch-ns time."""
    return float(mdates.date2num(datetime.fromtimestamp(ts_ns / NS, UTC)))  # type: ignore[no-untyped-call]


def _day_numbers(days: Sequence[int]) -> np.ndarray:
    return np.array([float(mdates.date2num(day_date(d))) for d in days])  # type: ignore[no-untyped-call]


def _style(axis: Any, title: str, dates: bool = True) -> None:
    axis.set_title(title, loc="left", fontsize=11)
    axis.grid(alpha=0.3)
    if dates:
        axis.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))  # type: ignore[no-untyped-call]


def _hourly(path: SeriesPath) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times, equity and drawdown (fraction of peak NAV) at the end of each recorded hour."""
    hours = sorted(path.hours)
    values = np.array([path.hours[h] for h in hours])
    return np.array([_when(h * HOUR_NS) for h in hours]), values[:, 0], values[:, 2]


def _thin(values: np.ndarray, keep: str = "last") -> np.ndarray:
    """At most MAX_POINTS points: each bucket of consecutive samples by its last (or lowest) value.

    A line of a few hundred points looks the same at this width and keeps the SVG small and quick.
    """
    step = -(-len(values) // MAX_POINTS)
    if step <= 1:
        return values
    padded = np.concatenate([values, np.full(-len(values) % step, values[-1])]).reshape(-1, step)
    return padded.min(axis=1) if keep == "min" else padded[:, -1]


def _percent_axis(axis: Any) -> None:
    axis.yaxis.set_major_formatter(lambda value, _: f"{value:.1f}%")


def cumulative_plot(
    portfolio: Summary,
    accounts: list[Summary],
    paths: dict[tuple[str, str, str], SeriesPath],
    events: list[AlertEvent],
    changes: list[Change],
) -> str:
    """Cumulative return (equity / capital base, %) of the portfolio and accounts, alerts and changes marked."""
    figure, axis = plt.subplots(figsize=(WIDE, 4.2))
    for summary in [portfolio, *accounts]:
        times, equity, _ = _hourly(paths[summary.series.key])
        main = summary is portfolio
        axis.plot(
            _thin(times),
            _thin(100 * equity / summary.returns.capital),
            label=summary.name,
            linewidth=2.0 if main else 0.9,
            color="#1f77b4" if main else None,
            alpha=1.0 if main else 0.8,
        )
    for change in changes:
        axis.axvline(_when(change.ts_ns), color="k", linestyle="--", linewidth=0.8)
    firing = [e for e in events if e.state == "firing"]
    if firing:
        bottom = axis.get_ylim()[0]
        axis.scatter(
            [_when(e.ts_ns) for e in firing],
            [bottom] * len(firing),
            marker="^",
            s=18,
            color=[SEVERITY_COLORS.get(e.rule.severity, "#777777") for e in firing],
            zorder=3,
            clip_on=False,
        )
    _percent_axis(axis)
    _style(axis, f"Cumulative return (% of capital base); ▲ alerts fired ({len(firing)}), dashed: applied changes")
    axis.legend(fontsize=7, ncol=4, loc="upper left")
    return _svg(figure)


def underwater_plot(portfolio: Summary, path: SeriesPath) -> str:
    """Portfolio drawdown in % of peak NAV over time, the five worst drawdowns shaded and numbered."""
    times, _, below = _hourly(path)
    times, depth = _thin(times), _thin(-100 * below, keep="min")
    figure, axis = plt.subplots(figsize=(WIDE, 3.2))
    axis.fill_between(times, depth, 0, color="#d62728", alpha=0.55, linewidth=0.6)
    axis.plot(times, depth, color="#a01010", linewidth=0.7)
    for rank, drawdown in enumerate(portfolio.drawdowns, 1):
        end = drawdown.end_ns if drawdown.end_ns is not None else portfolio.end_ns
        axis.axvspan(_when(drawdown.start_ns), _when(end), color="#999999", alpha=0.15)
        axis.annotate(str(rank), (_when(drawdown.trough_ns), 0), fontsize=8, ha="center", va="bottom")
    _percent_axis(axis)
    _style(axis, "Underwater: portfolio drawdown (% below peak NAV), worst five shaded")
    return _svg(figure)


def rolling_plot(summaries: list[Summary]) -> str:
    """Rolling Sharpe and rolling volatility (annualized) of the portfolio and accounts."""
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(WIDE, 5.2), sharex=True)
    window = rolling_window(len(summaries[0].returns.values))
    for summary in summaries:
        r = summary.returns
        if window is None:
            break
        x = _day_numbers(r.days[window - 1 :])
        main = summary is summaries[0]
        style = {"label": summary.name, "linewidth": 1.8 if main else 0.9, "color": "#1f77b4" if main else None}
        top.plot(x, rolling_sharpe(r.values, window, r.periods_per_year), **style)
        bottom.plot(x, 100 * rolling_volatility(r.values, window, r.periods_per_year), **style)
    if window is None:
        top.text(0.5, 0.5, "too few days for a rolling window (10 needed)", ha="center", transform=top.transAxes)
    else:
        top.legend(fontsize=7, ncol=4, loc="upper left")
    top.axhline(0, color="k", linewidth=0.6)
    _style(top, f"Rolling Sharpe ({window}-day window)")
    _style(bottom, f"Rolling volatility, annualized ({window}-day window)")
    _percent_axis(bottom)
    return _svg(figure)


def histogram_plot(portfolio: Summary) -> str:
    """Histogram of the portfolio's daily returns (%), the fitted normal density, VaR and CVaR."""
    r = 100 * portfolio.returns.values
    figure, axis = plt.subplots(figsize=(WIDE, 3.4))
    axis.hist(r, bins=max(10, min(60, len(r) // 2)), density=True, color="#1f77b4", alpha=0.7, edgecolor="white")
    if len(r) > 1 and r.std(ddof=1) > 0:
        grid = np.linspace(float(r.min()), float(r.max()), 200)
        normal = NormalDist(float(r.mean()), float(r.std(ddof=1)))
        axis.plot(grid, [normal.pdf(x) for x in grid], color="k", linewidth=1.0, label="normal fit")
    for value, label, color in ((portfolio.var, "VaR 95%", "#ff7f0e"), (portfolio.cvar, "CVaR 95%", "#d62728")):
        if value is not None:
            axis.axvline(100 * value, color=color, linestyle="--", label=f"{label} {100 * value:.2f}%")
    axis.xaxis.set_major_formatter(lambda value, _: f"{value:.2f}%")
    _style(axis, "Distribution of daily returns (portfolio)", dates=False)
    if axis.get_legend_handles_labels()[0]:  # one day: no fit, no VaR
        axis.legend(fontsize=7)
    return _svg(figure)


def _aligned(strategies: list[Summary], days: Sequence[int]) -> np.ndarray:
    """Strategies × days matrix of daily returns (0 outside a strategy's own period)."""
    index = {day: column for column, day in enumerate(days)}
    matrix = np.zeros((len(strategies), len(days)))
    for row, summary in enumerate(strategies):
        for day, value in zip(summary.returns.days, summary.returns.values, strict=True):
            if day in index:
                matrix[row, index[day]] = value
    return matrix


def correlation_plot(strategies: list[Summary], days: Sequence[int]) -> str:
    """Pearson correlation of the strategies' daily returns over the portfolio's days."""
    matrix = correlation(_aligned(strategies, days))
    size = max(4.0, 0.26 * len(strategies) + 1.5)
    figure, axis = plt.subplots(figsize=(size + 1.5, size))
    image = axis.imshow(np.ma.masked_invalid(matrix), cmap="RdBu_r", vmin=-1, vmax=1)
    names = [s.name for s in strategies]
    axis.set_xticks(range(len(names)), names, fontsize=6, rotation=90)
    axis.set_yticks(range(len(names)), names, fontsize=6)
    axis.set_title("Correlation of strategies' daily returns", loc="left", fontsize=11)
    figure.colorbar(image, ax=axis, shrink=0.8)
    return _svg(figure)


def strategy_days(strategies: list[Summary], paths: dict[tuple[str, str, str], SeriesPath]) -> tuple[list[int], Any]:
    """UTC days and, per strategy, the last hourly sample of each day (carried forward): see SeriesPath.hours."""
    days = sorted({h // 24 for s in strategies for h in paths[s.series.key].hours})
    grid = np.zeros((len(strategies), len(days), 3))
    for row, summary in enumerate(strategies):
        last: dict[int, tuple[float, float, float]] = {}
        for hour, sample in sorted(paths[summary.series.key].hours.items()):
            last[hour // 24] = sample
        previous = (0.0, 0.0, 0.0)
        for column, day in enumerate(days):
            previous = last.get(day, previous)
            grid[row, column] = previous
    return days, grid


def _day_labels(axis: Any, days: list[int]) -> None:
    step = max(1, -(-len(days) // 20))
    ticks = list(range(0, len(days), step))
    axis.set_xticks(ticks, [day_date(days[t]).strftime("%m-%d") for t in ticks], fontsize=7, rotation=90)


def strategy_heatmaps(strategies: list[Summary], days: list[int], grid: Any) -> tuple[str, str]:
    """Two strategies × days heatmaps: daily PnL, and drawdown in % of peak NAV (underwater by strategy).

    `days` and `grid` are `strategy_days`'.
    """
    pnl = np.diff(grid[..., 0], axis=1, prepend=0.0)
    depth = -100 * grid[..., 2]
    names = [s.name for s in strategies]
    out = []
    for values, title, cmap, label in (
        (pnl, "Daily PnL by strategy", "RdYlGn", "PnL"),
        (depth, "Underwater by strategy (% below peak NAV, end of day)", "Reds_r", "% below peak"),
    ):
        figure, axis = plt.subplots(figsize=(WIDE, max(3.0, 0.22 * len(names))))
        limit = float(np.abs(values).max()) or 1.0
        bounds = (-limit, limit) if cmap == "RdYlGn" else (-limit, 0.0)
        image = axis.imshow(values, aspect="auto", cmap=cmap, vmin=bounds[0], vmax=bounds[1])
        axis.set_yticks(range(len(names)), names, fontsize=7)
        _day_labels(axis, days)
        axis.set_title(title, loc="left", fontsize=11)
        figure.colorbar(image, ax=axis, label=label)
        out.append(_svg(figure))
    return out[0], out[1]


def strategy_equity_plot(strategies: list[Summary], days: list[int], grid: Any) -> str:
    """Equity of every strategy at the end of each day (`strategy_days`); the best and worst five in colour."""
    ranked = sorted(strategies, key=lambda s: s.row["equity"], reverse=True)
    shown = {s.name for s in ranked[:HIGHLIGHTED] + ranked[-HIGHLIGHTED:]}
    x = _day_numbers(days)
    figure, axis = plt.subplots(figsize=(WIDE, 4.5))
    for row, summary in enumerate(strategies):
        if summary.name in shown:
            axis.plot(x, grid[row, :, 0], label=summary.name, linewidth=1.2)
        else:
            axis.plot(x, grid[row, :, 0], color="#bbbbbb", linewidth=0.6)
    _style(axis, "Equity by strategy at the end of each day (best and worst five in colour)")
    axis.legend(fontsize=7, ncol=2, loc="upper left")
    return _svg(figure)


def timeline_plot(events: list[AlertEvent], changes: list[Change]) -> str:
    """Alerts fired per rule (coloured by severity) and applied changes over time."""
    figure, axis = plt.subplots(figsize=(WIDE, 3.5))
    firing = [e for e in events if e.state == "firing"]
    lanes = sorted({e.rule.name for e in firing}) + (["applied changes"] if changes else [])
    for lane, rule in enumerate(lanes[: len(lanes) - bool(changes)]):
        mine = [e for e in firing if e.rule.name == rule]
        color = SEVERITY_COLORS.get(mine[0].rule.severity, "#777777")
        axis.scatter([_when(e.ts_ns) for e in mine], [lane] * len(mine), color=color, s=14)
    if changes:
        axis.scatter([_when(c.ts_ns) for c in changes], [len(lanes) - 1] * len(changes), marker="D", color="k")
    axis.set_yticks(range(len(lanes)), lanes, fontsize=7)
    _style(axis, f"Alerts fired ({len(firing)}) and applied changes ({len(changes)})")
    if not lanes:
        axis.text(0.5, 0.5, "no alerts fired and no changes applied", ha="center", transform=axis.transAxes)
    return _svg(figure)
