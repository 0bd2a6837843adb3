"""The live view's alert panel: counts of what fires now per rule and severity, and the latest few."""

from __future__ import annotations

import re

from rich.console import Console

from collector.alerts.evaluator import RECENT, AlertEngine
from collector.alerts.rules import AlertRules
from collector.engine.engine import Engine
from collector.model import NS, Fill
from collector.run.live import Snapshot, alert_summary, render

T0 = 1_709_301_600 * NS
STREAK = {"name": "streak", "level": "book", "kind": "threshold", "metric": "loss_streak", "op": "ge", "value": 2}
DRAWDOWN = {"name": "dd", "level": "strategy", "kind": "drawdown_pct", "threshold": 0.001, "severity": "critical"}


def _desk_with_alerts(books: int) -> AlertEngine:
    engine = Engine(default_capital=1000.0)
    alerts = AlertEngine(AlertRules.model_validate({"rules": [STREAK, DRAWDOWN]}), engine, log_events=False)
    n = 0
    for book in range(books):
        for _ in range(2):  # two losing round trips: the streak rule fires on each book, drawdown on each strategy
            for side, price in (("buy", 100.0), ("sell", 99.0)):
                n += 1
                fill = Fill(T0 + n * NS, "A", f"s{book}", "X", side, 1.0, price, f"f{n}")
                alerts.on_fill(fill, engine.on_fill(fill))
    return alerts


def test_summary_counts_firing_alerts_per_rule_and_keeps_the_latest_few() -> None:
    alerts = _desk_with_alerts(books=8)
    summary = alert_summary(alerts)
    assert summary.firing == [("dd", "critical", 8), ("streak", "warning", 8)]  # most first, then by name
    assert summary.fired == 16 and len(summary.latest) == RECENT
    assert {entry[2:] for entry in summary.latest[:2]} == {
        ("streak", "book A/s7", "2"),
        ("dd", "strategy _all/s7", "0.002"),
    }
    assert [ts for ts, *_ in summary.latest] == sorted((ts for ts, *_ in summary.latest), reverse=True)


def test_the_view_shows_the_summary_instead_of_a_log() -> None:
    console = Console(record=True, width=140)
    console.print(render(Snapshot(alerts=alert_summary(_desk_with_alerts(books=3))), 1.0, None))
    text = console.export_text()
    assert "alerts: 6 firing now, 6 fired in this run" in text
    lines = [line for line in text.splitlines() if "streak" in line and "warning" in line]
    assert any(line.split()[1:4] == ["streak", "warning", "3"] for line in lines)  # the count row
    latest = [line.split()[1:7] for line in text.splitlines() if re.match(r"│\s+\d\d-\d\d \d\d:\d\d ", line)]
    assert len(latest) == RECENT  # the latest, no more
    assert all(row[3:5] in (["streak", "book"], ["dd", "strategy"]) for row in latest)
    quiet = Console(record=True, width=140)
    quiet.print(render(Snapshot(alerts=alert_summary(_desk_with_alerts(books=0))), 1.0, None))
    assert "no alert has fired" in quiet.export_text()
