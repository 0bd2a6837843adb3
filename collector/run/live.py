"""The live terminal view of `stratmon run --live` and `make demo` (rich)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from collector.alerts.evaluator import AlertEngine
from collector.engine.series import ALL
from collector.run.collector import Collector
from collector.run.health import weighted_percentiles

SHOWN = 6  # strategies in the top and in the bottom table
ALERT_LOG = "collector.alerts.evaluator"  # its transition lines would scroll the view: the summary shows them
SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


@dataclass
class AlertSummary:
    """Alerts firing now by rule, the total fired in this run, and the latest firing messages."""

    firing: list[tuple[str, str, int]] = field(default_factory=list)  # (rule, severity, count), most first
    fired: int = 0
    latest: list[tuple[int, str, str, str, str]] = field(
        default_factory=list
    )  # (ts_ns, severity, rule, where, reading)


@dataclass
class Snapshot:
    """What the view shows, built in the engine thread so the view never reads live engine state."""

    portfolio: dict[str, Any] = field(default_factory=dict)
    strategies: list[dict[str, Any]] = field(default_factory=list)
    clock_ns: int = 0
    fills_in: int = 0
    fills_per_s: float = 0.0
    latency_ms: tuple[float, float] | None = None
    queue_depth: int = 0
    rejected: int = 0
    duplicates: int = 0
    alerts: AlertSummary | None = None  # None: alerts disabled


class ViewFeed:
    """An `on_flush` callback publishing a `Snapshot` at most `every` seconds."""

    def __init__(self, every: float = 0.5) -> None:
        self.every = every
        self.snapshot = Snapshot()
        self._last = (time.monotonic(), 0)

    def __call__(self, collector: Collector) -> None:
        now = time.monotonic()
        last_time, last_fills = self._last
        if now - last_time < self.every:
            return
        engine = collector.engine
        fills_in = collector.counters.fills_in
        window = collector.latency
        latency = None
        if window.values:
            p50, p99 = weighted_percentiles(window.values, window.weights, (0.5, 0.99))
            latency = (p50, p99)
        self.snapshot = Snapshot(
            portfolio=engine.row(engine.portfolio),
            strategies=[engine.row(s) for key, s in engine.series.items() if key[0] == "strategy" and s.fills],
            clock_ns=engine.clock_ns,
            fills_in=fills_in,
            fills_per_s=(fills_in - last_fills) / (now - last_time),
            latency_ms=latency,
            queue_depth=collector.outlet.depth(),
            rejected=collector.checker.rejected,
            duplicates=collector.counters.fills_duplicate,
            alerts=None if collector.alerts is None else alert_summary(collector.alerts),
        )
        self._last = (now, fills_in)


def alert_summary(alerts: AlertEngine) -> AlertSummary:
    """Built in the engine thread, like the rest of the snapshot."""
    firing = sorted(
        ((rule, severity, n) for (rule, severity), n in alerts.firing().items()), key=lambda r: (-r[2], r[0])
    )
    latest = [
        (
            e.ts_ns,
            str(e.rule.severity),
            e.rule.name,
            "collector" if e.level == "collector" else f"{e.level} {e.account}/{e.strategy}",
            "n/a" if e.value is None else f"{e.value:.4g}",  # the rule's name says which statistic
        )
        for e in reversed(alerts.recent)
    ]
    return AlertSummary(firing, alerts.fired, latest)


def _alert_panel(summary: AlertSummary) -> Panel:
    """Counts of alerts firing now per rule and severity, then the latest few (not a scrolling log)."""
    counts = Table(expand=True, box=None, show_header=bool(summary.firing))
    for column in ("firing now", "severity", "count"):
        counts.add_column(column, justify="right" if column == "count" else "left")
    for rule, severity, count in summary.firing:
        counts.add_row(rule, _severity(severity), str(count))
    latest = Table(expand=True, box=None, show_header=bool(summary.latest))
    for column in ("latest fired", "severity", "rule", "on", "value"):
        latest.add_column(column)
    for ts, severity, rule, where, reading in summary.latest:
        latest.add_row(
            f"{datetime.fromtimestamp(ts / 1e9, UTC):%m-%d %H:%M}", _severity(severity), rule, where, reading
        )
    now = sum(count for _, _, count in summary.firing)
    title = f"alerts: {now} firing now, {summary.fired} fired in this run"
    body = Group(counts, latest) if summary.fired or now else Group("[dim]no alert has fired[/]")
    return Panel(body, title=title, title_align="left", border_style="yellow" if now else "green")


def _severity(severity: str) -> str:
    return f"[{SEVERITY_STYLE.get(severity, '')}]{escape(severity)}[/]"


def _money(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None, digits: int = 1) -> str:
    """A fraction as a rounded percentage; — while undefined (e.g. below the minimum sample)."""
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def _strategy_table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title, expand=True, title_justify="left")
    for column in ("strategy", "equity", "drawdown", "dd %", "trades", "win rate", "sharpe", "slip bps", "loss streak"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for row in rows:
        equity = row["equity"]
        table.add_row(
            row["strategy"],
            f"[{'green' if equity >= 0 else 'red'}]{_money(equity)}[/]",
            _money(row["drawdown"]),
            _pct(row["drawdown_pct"], 2),
            str(row["trades"]),
            _pct(row["win_rate"]),
            _num(row["sharpe"]),
            _num(row["slippage_bps_avg"], 1),
            str(row["loss_streak"]),
        )
    return table


def render(snapshot: Snapshot, elapsed: float, duration: float | None) -> Group:
    p = snapshot.portfolio
    clock = datetime.fromtimestamp(snapshot.clock_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M") if p else "—"
    latency = "—" if snapshot.latency_ms is None else f"{snapshot.latency_ms[0]:.0f} / {snapshot.latency_ms[1]:.0f} ms"
    left = f"{elapsed:.0f}s" + (f" of {duration:.0f}s" if duration else "")
    header = (
        f"[bold]portfolio NAV[/] {_money(p.get('nav'))}   [bold]PnL[/] {_money(p.get('equity'))}"
        f"   [bold]drawdown[/] {_money(p.get('drawdown'))} ({_pct(p.get('drawdown_pct'), 2)})"
        f"   [bold]max dd[/] {_money(p.get('max_drawdown'))} ({_pct(p.get('max_drawdown_pct'), 2)})"
        f"   [bold]sharpe[/] {_num(p.get('sharpe'))}   [bold]win rate[/] {_pct(p.get('win_rate'))}\n"
        f"[bold]fills[/] {snapshot.fills_in:,}   [bold]fills/s[/] {snapshot.fills_per_s:,.0f}"
        f"   [bold]latency p50/p99[/] {latency}   [bold]queue[/] {snapshot.queue_depth}"
        f"   [bold]rejected[/] {snapshot.rejected}   [bold]duplicates[/] {snapshot.duplicates}\n"
        f"[dim]market clock {clock} UTC · running {left} · Ctrl-C stops cleanly · — = not enough data yet"
        " (Sharpe after metrics.min_days, win rate after metrics.min_round_trips)[/]"
    )
    ranked = sorted((r for r in snapshot.strategies if r["strategy"] != ALL), key=lambda r: r["equity"], reverse=True)
    parts: list[Any] = [
        Panel(header, title="stratmon live", border_style="cyan"),
        _strategy_table(f"top {SHOWN} strategies", ranked[:SHOWN]),
        _strategy_table(f"bottom {SHOWN} strategies", list(reversed(ranked[-SHOWN:])) if len(ranked) > SHOWN else []),
    ]
    if snapshot.alerts is not None:
        parts.append(_alert_panel(snapshot.alerts))
    return Group(*parts)


def run_with_live_view(collector: Collector, duration: float | None, console: Console | None = None) -> None:
    """Run the collector in a worker thread and redraw the view in this one until it stops."""
    feed = ViewFeed()
    collector.on_flush.append(feed)
    failure: list[BaseException] = []

    def work() -> None:
        try:
            collector.run(duration=duration)
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=work, name="collector")
    alert_log = logging.getLogger(ALERT_LOG)
    level = alert_log.level
    alert_log.setLevel(logging.ERROR)  # transitions go to the summary (and to InfluxDB), not as scrolling lines
    started = time.monotonic()
    worker.start()
    try:
        with Live(console=console or Console(), refresh_per_second=4, transient=False) as live:
            while worker.is_alive():
                live.update(render(feed.snapshot, time.monotonic() - started, duration))
                worker.join(0.25)
            live.update(render(feed.snapshot, time.monotonic() - started, duration))
    finally:
        alert_log.setLevel(level)
    (console or Console()).print()
    if failure:
        raise failure[0]
