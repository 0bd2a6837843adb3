"""The tear sheet's figures: matplotlib drawn to inline SVG (no scripts, no network).

Each function takes figures already computed (collector/tearsheet_summary.py, tearsheet_stats.py)
and returns one `<svg>` element.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from statistics import NormalDist
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from collector.alerts.evaluator import AlertEvent
from collector.model import NS
from collector.tearsheet_history import HOUR_NS, Change, SeriesPath
from collector.tearsheet_stats import (
    ROLLING_WINDOWS,
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
DATE_STEPS = (1 / 24, 2 / 24, 3 / 24, 6 / 24, 12 / 24, 1.0, 2.0, 7.0, 14.0, 28.0, 56.0, 91.0, 182.0, 364.0)  # days


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


def _style(axis: Any, title: str, times: np.ndarray | None = None) -> None:
    """Title and grid; date ticks from the range of `times` (matplotlib date numbers) when given."""
    axis.set_title(title, loc="left", fontsize=11)
    axis.grid(alpha=0.3)
    if times is not None:
        _date_ticks(axis, times)


def _distinct(ticks: Sequence[float], labels: list[str]) -> tuple[list[float], list[str]]:
    """The first tick of each label: never the same label twice on an axis."""
    seen: dict[str, float] = {}
    for tick, label in zip(ticks, labels, strict=True):
        seen.setdefault(label, tick)
    return list(seen.values()), list(seen)


def _date_ticks(axis: Any, times: np.ndarray) -> None:
    """Date ticks inside the data's time range: days when they are a day or more apart, else hours; one if flat."""
    finite = times[np.isfinite(times)]
    if not len(finite):
        axis.set_xticks([])
        return
    low, high = float(finite.min()), float(finite.max())
    step = next((s for s in DATE_STEPS if (high - low) / s <= 7), DATE_STEPS[-1])
    # multiples of the step (date numbers are days): whole hours, or UTC midnights from a day up
    multiples = np.arange(math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9) + 1) * step
    ticks = [float(t) for t in multiples] or [low]
    fmt = "%Y-%m-%d" if step >= 1.0 else "%m-%d %H:%M"
    labels = [mdates.num2date(t).strftime(fmt) for t in ticks]  # type: ignore[no-untyped-call]
    axis.set_xticks(*_distinct(ticks, labels))


def _percent_ticks(axis: Any, values: np.ndarray, which: str = "y") -> None:
    """Percent ticks inside the data's range with as many decimals as their spacing needs; one tick if flat."""
    finite = values[np.isfinite(values)]
    set_ticks = axis.set_yticks if which == "y" else axis.set_xticks
    if not len(finite):
        set_ticks([])
        return
    low, high = float(finite.min()), float(finite.max())
    if high - low <= 1e-12 * max(1.0, abs(high)):
        set_ticks([low], [f"{round(low, 2) + 0.0:.2f}%"])  # + 0.0: no "-0.00%"
        return
    ticks = [float(t) for t in MaxNLocator(nbins=5).tick_values(low, high) if low - 1e-12 <= t <= high + 1e-12]
    if len(ticks) < 2:
        ticks = [low, high]
    spacing = float(min(np.diff(ticks)))
    digits = max(0, math.ceil(-math.log10(spacing)))
    # snapping the tick at 0 avoids "-0.0%"
    labels = [f"{(0.0 if abs(t) < spacing / 2 else t):.{digits}f}%" for t in ticks]
    set_ticks(*_distinct(ticks, labels))


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


def cumulative_plot(
    portfolio: Summary,
    accounts: list[Summary],
    paths: dict[tuple[str, str, str], SeriesPath],
    events: list[AlertEvent],
    changes: list[Change],
) -> str:
    """Cumulative return (equity / capital base, %) of the portfolio and accounts, alerts and changes marked."""
    figure, axis = plt.subplots(figsize=(WIDE, 4.2))
    drawn_times, drawn_values = [], []
    for summary in [portfolio, *accounts]:
        times, equity, _ = _hourly(paths[summary.series.key])
        main = summary is portfolio
        drawn_times.append(_thin(times))
        drawn_values.append(_thin(100 * equity / summary.returns.capital))
        axis.plot(
            drawn_times[-1],
            drawn_values[-1],
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
    _percent_ticks(axis, np.concatenate(drawn_values))
    title = f"Cumulative return (% of capital base); ▲ alerts fired ({len(firing)}), dashed: applied changes"
    _style(axis, title, np.concatenate(drawn_times))
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
    _percent_ticks(axis, np.append(depth, 0.0))
    _style(axis, "Underwater: portfolio drawdown (% below peak NAV), worst five shaded", times)
    return _svg(figure)


def rolling_plot(summaries: list[Summary]) -> str:
    """Rolling Sharpe and rolling volatility (annualized) of the portfolio and accounts.

    Without two windows of history (the shortest is 5 days) it says so instead of drawing empty axes.
    """
    days = len(summaries[0].returns.values)
    window = rolling_window(days)
    if window is None:
        figure, axis = plt.subplots(figsize=(WIDE, 1.6))
        axis.set_axis_off()
        shortest = 2 * min(ROLLING_WINDOWS)
        axis.set_title("Rolling Sharpe and volatility", loc="left", fontsize=11)
        message = f"Not enough history for a rolling window: {days} days, at least {shortest} needed."
        axis.text(0.5, 0.5, message, ha="center", va="center", transform=axis.transAxes)
        return _svg(figure)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(WIDE, 5.2), sharex=True)
    x = _day_numbers(summaries[0].returns.days[window - 1 :])
    sharpes, vols = [], []
    for summary in summaries:
        r = summary.returns
        main = summary is summaries[0]
        style = {"label": summary.name, "linewidth": 1.8 if main else 0.9, "color": "#1f77b4" if main else None}
        sharpes.append(rolling_sharpe(r.values, window, r.periods_per_year))
        vols.append(100 * rolling_volatility(r.values, window, r.periods_per_year))
        top.plot(_day_numbers(r.days[window - 1 :]), sharpes[-1], **style)
        bottom.plot(_day_numbers(r.days[window - 1 :]), vols[-1], **style)
    top.legend(fontsize=7, ncol=4, loc="upper left")
    top.axhline(0, color="k", linewidth=0.6)
    _style(top, f"Rolling Sharpe ({window}-day window)")
    _style(bottom, f"Rolling volatility, annualized ({window}-day window)", x)
    _percent_ticks(bottom, np.concatenate(vols))
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
    _percent_ticks(axis, r, which="x")
    _style(axis, "Distribution of daily returns (portfolio)")
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
    _style(axis, "Equity by strategy at the end of each day (best and worst five in colour)", x)
    axis.legend(fontsize=7, ncol=2, loc="upper left")
    return _svg(figure)


def timeline_plot(events: list[AlertEvent], changes: list[Change], start_ns: int, end_ns: int) -> str:
    """Alerts fired per rule (coloured by severity) and applied changes over the report's period [start, end]."""
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
    period = np.array([_when(start_ns), _when(end_ns)])
    if period[1] > period[0]:
        axis.set_xlim(*period)
    _style(axis, f"Alerts fired ({len(firing)}) and applied changes ({len(changes)})", period)
    if not lanes:
        axis.text(0.5, 0.5, "no alerts fired and no changes applied", ha="center", transform=axis.transAxes)
    return _svg(figure)
