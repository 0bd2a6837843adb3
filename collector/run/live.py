"""The live terminal view of `stratmon run --live` and `make demo` (rich)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from collector.engine.series import ALL
from collector.run.collector import Collector
from collector.run.health import weighted_percentiles

SHOWN = 6  # strategies in the top and in the bottom table


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
        )
        self._last = (now, fills_in)


def _money(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _strategy_table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title, expand=True, title_justify="left")
    for column in ("strategy", "equity", "drawdown", "trades", "win rate", "sharpe", "slip bps", "loss streak"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for row in rows:
        equity = row["equity"]
        table.add_row(
            row["strategy"],
            f"[{'green' if equity >= 0 else 'red'}]{_money(equity)}[/]",
            _money(row["drawdown"]),
            str(row["trades"]),
            _num(row["win_rate"] and row["win_rate"] * 100, 1) + ("%" if row["win_rate"] is not None else ""),
            _num(row["sharpe"]),
            _num(row["slippage_bps_avg"]),
            str(row["loss_streak"]),
        )
    return table


def render(snapshot: Snapshot, elapsed: float, duration: float | None) -> Group:
    p = snapshot.portfolio
    clock = datetime.fromtimestamp(snapshot.clock_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M") if p else "—"
    latency = "—" if snapshot.latency_ms is None else f"{snapshot.latency_ms[0]:.0f} / {snapshot.latency_ms[1]:.0f} ms"
    left = f"{elapsed:.0f}s" + (f" of {duration:.0f}s" if duration else "")
    header = (
        f"[bold]portfolio equity[/] {_money(p.get('equity'))}   [bold]drawdown[/] {_money(p.get('drawdown'))}"
        f"   [bold]max dd[/] {_money(p.get('max_drawdown'))}   [bold]sharpe[/] {_num(p.get('sharpe'))}"
        f"   [bold]win rate[/] {_num((p.get('win_rate') or 0) * 100, 1)}%\n"
        f"[bold]fills[/] {snapshot.fills_in:,}   [bold]fills/s[/] {snapshot.fills_per_s:,.0f}"
        f"   [bold]latency p50/p99[/] {latency}   [bold]queue[/] {snapshot.queue_depth}"
        f"   [bold]rejected[/] {snapshot.rejected}   [bold]duplicates[/] {snapshot.duplicates}\n"
        f"[dim]market clock {clock} UTC · running {left} · Ctrl-C stops cleanly[/]"
    )
    ranked = sorted((r for r in snapshot.strategies if r["strategy"] != ALL), key=lambda r: r["equity"], reverse=True)
    return Group(
        Panel(header, title="stratmon live", border_style="cyan"),
        _strategy_table(f"top {SHOWN} strategies", ranked[:SHOWN]),
        _strategy_table(f"bottom {SHOWN} strategies", list(reversed(ranked[-SHOWN:])) if len(ranked) > SHOWN else []),
    )


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
    started = time.monotonic()
    worker.start()
    with Live(console=console or Console(), refresh_per_second=4, transient=False) as live:
        while worker.is_alive():
            live.update(render(feed.snapshot, time.monotonic() - started, duration))
            worker.join(0.25)
        live.update(render(feed.snapshot, time.monotonic() - started, duration))
    (console or Console()).print()
    if failure:
        raise failure[0]
