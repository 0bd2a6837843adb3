"""`stratmon report --html OUT.html`: one self-contained page with plots, for people away from Grafana.

Equity and drawdown of the portfolio, accounts and strategies, a daily PnL heatmap per strategy,
the strategy ranking, and the timeline of alerts (evaluated with rules/alerts.yaml over the same
fills) and applied changes. Plots are inline SVG drawn by matplotlib: no scripts, no network.
"""

from __future__ import annotations

import html
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np

from collector.alerts.evaluator import AlertEngine, AlertEvent
from collector.alerts.rules import AlertRules, load_rules
from collector.config import Settings
from collector.engine.engine import Engine, FillResult
from collector.engine.series import ALL, Series
from collector.model import NS, Fill, Mark
from collector.report import Report

HOUR_NS = 3600 * NS
HIGHLIGHTED = 5  # best and worst strategies drawn in colour, the rest grey


@dataclass
class History:
    """Hourly samples of equity and drawdown for the portfolio, accounts and strategies."""

    samples: dict[tuple[str, str, str], dict[int, tuple[float, float]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    rules: AlertRules | None = None
    alerts: AlertEngine | None = None
    events: list[AlertEvent] = field(default_factory=list)

    def __call__(self, engine: Engine, event: Fill | Mark, result: FillResult | None) -> None:
        if self.alerts is None and self.rules is not None:
            self.alerts = AlertEngine(self.rules, engine, log_events=False)
        hour = event.ts // HOUR_NS
        if isinstance(event, Fill):
            chain: tuple[Series, ...] = engine.books[(event.account, event.strategy)].chain[1:]  # not the book
            if self.alerts is not None and result is not None:
                self.events += self.alerts.on_fill(event, result)
        else:
            chain = (engine.portfolio,)
        for series in chain:
            self.samples[series.key][hour] = (series.equity, series.peak - series.equity)


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _when(ts_ns: int) -> float:
    """matplotlib's date number of an epoch-ns time."""
    return float(mdates.date2num(datetime.fromtimestamp(ts_ns / NS, UTC)))  # type: ignore[no-untyped-call]


def _times(points: dict[int, tuple[float, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    hours = sorted(points)
    values = np.array([points[h] for h in hours])
    return np.array([_when(h * HOUR_NS) for h in hours]), values[:, 0], values[:, 1]


def _style(axis: Any, title: str) -> None:
    axis.set_title(title, loc="left", fontsize=11)
    axis.grid(alpha=0.3)
    axis.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))  # type: ignore[no-untyped-call]


def portfolio_plot(history: History) -> str:
    times, equity, drawdown = _times(history.samples[("portfolio", ALL, ALL)])
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(11, 5), sharex=True, height_ratios=[3, 1])
    top.plot(times, equity, color="#1f77b4")
    _style(top, "Portfolio equity")
    bottom.fill_between(times, -drawdown, color="#d62728", alpha=0.5)
    _style(bottom, "Drawdown")
    return _svg(figure)


def level_plot(history: History, level: str, ranking: list[str]) -> str:
    figure, axis = plt.subplots(figsize=(11, 4.5))
    keys = sorted(k for k in history.samples if k[0] == level)
    name_index = 1 if level == "account" else 2
    shown = set(ranking[:HIGHLIGHTED] + ranking[-HIGHLIGHTED:]) if level == "strategy" else None
    for key in keys:
        times, equity, _ = _times(history.samples[key])
        name = key[name_index]
        if shown is None or name in shown:
            axis.plot(times, equity, label=name, linewidth=1.2)
        else:
            axis.plot(times, equity, color="#bbbbbb", linewidth=0.6)
    _style(axis, f"Equity by {level}" + (" (best and worst five in colour)" if shown else ""))
    axis.legend(fontsize=7, ncol=2, loc="upper left")
    return _svg(figure)


def heatmap(history: History) -> str:
    keys = sorted(k for k in history.samples if k[0] == "strategy")
    days = sorted({h // 24 for key in keys for h in history.samples[key]})
    grid = np.zeros((len(keys), len(days)))
    for row, key in enumerate(keys):
        closes: dict[int, float] = {}
        for hour, (equity, _) in sorted(history.samples[key].items()):
            closes[hour // 24] = equity
        previous = 0.0
        for column, day in enumerate(days):
            close = closes.get(day, previous)
            grid[row, column] = close - previous
            previous = close
    figure, axis = plt.subplots(figsize=(11, max(3.0, 0.22 * len(keys))))
    limit = float(np.abs(grid).max()) or 1.0
    image = axis.imshow(grid, aspect="auto", cmap="RdYlGn", vmin=-limit, vmax=limit)
    axis.set_yticks(range(len(keys)), [k[2] for k in keys], fontsize=7)
    labels = [datetime.fromtimestamp(d * 86400, UTC).strftime("%m-%d") for d in days]
    axis.set_xticks(range(len(days)), labels, fontsize=7, rotation=90)
    axis.set_title("Daily PnL by strategy", loc="left", fontsize=11)
    figure.colorbar(image, ax=axis, label="PnL")
    return _svg(figure)


def ranking_plot(rows: list[dict[str, Any]]) -> str:
    ordered = sorted(rows, key=lambda r: r["equity"])
    figure, axis = plt.subplots(figsize=(11, max(3.0, 0.22 * len(ordered))))
    colors = ["#2ca02c" if r["equity"] >= 0 else "#d62728" for r in ordered]
    axis.barh([r["strategy"] for r in ordered], [r["equity"] for r in ordered], color=colors)
    axis.tick_params(axis="y", labelsize=7)
    axis.set_title("Strategy ranking by equity", loc="left", fontsize=11)
    axis.grid(alpha=0.3, axis="x")
    return _svg(figure)


def timeline_plot(events: list[AlertEvent], changes: list[tuple[int, str]]) -> str:
    figure, axis = plt.subplots(figsize=(11, 3.5))
    firing = [e for e in events if e.state == "firing"]
    rules = sorted({e.rule.name for e in firing}) + (["applied changes"] if changes else [])
    colors = {"critical": "#d62728", "warning": "#ff7f0e", "info": "#1f77b4"}
    for event in firing:
        axis.scatter(_when(event.ts_ns), rules.index(event.rule.name), color=colors[event.rule.severity], s=14)
    for ts, _ in changes:
        axis.scatter(_when(ts), rules.index("applied changes"), marker="D", color="k")
    axis.set_yticks(range(len(rules)), rules, fontsize=7)
    _style(axis, f"Alerts fired ({len(firing)}) and applied changes ({len(changes)})")
    if not rules:
        axis.text(0.5, 0.5, "no alerts fired and no changes applied", ha="center", transform=axis.transAxes)
    return _svg(figure)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return ""
        return f"{value:,.2f}" if isinstance(value, float) else html.escape(str(value))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r[c])}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px}h2{font-size:15px;
margin-top:28px}table{border-collapse:collapse;font-size:12px}td,th{padding:3px 8px;border-bottom:1px solid #ddd;
text-align:right}td:first-child,th:first-child{text-align:left}figure{margin:8px 0}svg{max-width:100%;height:auto}"""


def render_html(report: Report, history: History, changes: list[tuple[int, str]] | None = None) -> str:
    levels = report.levels()
    strategies = levels["strategy"]
    ranking = [r["strategy"] for r in sorted(strategies, key=lambda r: r["equity"], reverse=True)]
    portfolio = levels["portfolio"][0] if levels["portfolio"] else {}
    columns = ["strategy", "equity", "max_drawdown", "trades", "win_rate", "profit_factor", "sharpe", "sortino"]
    summary = (
        f"{report.accepted:,} fills ({report.rejected} rejected, {report.duplicates} duplicates), "
        f"portfolio equity {portfolio.get('equity', 0):,.0f}, max drawdown {portfolio.get('max_drawdown', 0):,.0f}, "
        f"Sharpe {portfolio.get('sharpe') or float('nan'):.2f}"
    )
    sections = [
        ("Portfolio", portfolio_plot(history)),
        ("Accounts", level_plot(history, "account", [])),
        ("Strategies", level_plot(history, "strategy", ranking)),
        ("Daily PnL", heatmap(history)),
        ("Ranking", ranking_plot(strategies)),
        ("Alerts and changes", timeline_plot(history.events, changes or [])),
    ]
    figures = "".join(f"<h2>{title}</h2><figure>{svg}</figure>" for title, svg in sections)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>stratmon report</title>"
        f"<style>{CSS}</style></head><body><h1>stratmon report</h1><p>{html.escape(summary)}. "
        f"Generated {generated}.</p>{figures}<h2>Strategies</h2>{_table(strategies, columns)}</body></html>\n"
    )


def history_for(settings: Settings) -> History:
    """A recorder that also evaluates the configured alert rules over the report's fills."""
    history = History()
    if settings.alerts.enabled and Path(settings.alerts.rules).exists():
        history.rules = load_rules(settings.alerts.rules)
    return history


def write_html(path: Path, report: Report, history: History) -> None:
    path.write_text(render_html(report, history), encoding="utf-8")
