"""NAV, drawdown in % of peak NAV, and ratios held back (None) until their minimum sample."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from collector.config import Settings
from collector.engine.engine import Engine
from collector.engine.metrics import MinSample
from collector.model import NS, Fill
from collector.report import build_report

DAY = 86_400 * NS
MONDAY = 1_709_510_400 * NS  # 2024-03-04 00:00 UTC
TRADE_RATIOS = ("win_rate", "profit_factor", "expectancy", "avg_win", "avg_loss", "payoff_ratio")


def _weekdays(n: int) -> list[int]:
    """The first n Monday-to-Friday days from MONDAY, 10:00 UTC."""
    days = [d for d in range(2 * n) if d % 7 < 5][:n]
    return [MONDAY + d * DAY + 10 * 3600 * NS for d in days]


def _trade_daily(engine: Engine, gains: list[float]) -> None:
    """One round trip per trading day (buy 1 @100, sell 1 @100 + gain)."""
    for i, (ts, gain) in enumerate(zip(_weekdays(len(gains)), gains, strict=True)):
        engine.on_fill(Fill(ts, "A", "s", "X", "buy", 1, 100.0, f"b{i}"))
        engine.on_fill(Fill(ts + NS, "A", "s", "X", "sell", 1, 100.0 + gain, f"s{i}"))


def _book(engine: Engine) -> dict[str, object]:
    return engine.row(engine.series[("book", "A", "s")])


def test_nav_and_drawdown_in_percent_of_peak_nav() -> None:
    engine = Engine(default_capital=1e6)
    _trade_daily(engine, [500.0, 300.0, -1200.0])  # peak 800, then equity −400
    row = _book(engine)
    assert row["equity"] == pytest.approx(-400.0)
    assert row["nav"] == pytest.approx(1e6 - 400.0)
    assert row["drawdown"] == pytest.approx(1200.0)
    assert row["drawdown_pct"] == pytest.approx(1200.0 / (1e6 + 800.0), rel=1e-12)  # of the peak NAV, not capital
    assert row["max_drawdown_pct"] == pytest.approx(1200.0 / (1e6 + 800.0), rel=1e-12)
    assert row["return_cum"] == pytest.approx(-400.0 / 1e6)


def test_sharpe_and_sortino_wait_for_the_minimum_days() -> None:
    gains = [float(g) for g in np.random.default_rng(3).normal(50, 400, 20).round(2)]
    short, enough = Engine(default_capital=1e6), Engine(default_capital=1e6)
    _trade_daily(short, gains[:19])
    _trade_daily(enough, gains)
    assert short.sample == MinSample(20, 30)  # the default, like the config's
    assert _book(short)["sharpe"] is None and _book(short)["sortino"] is None
    r = np.array(gains) / 1e6
    assert _book(enough)["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252), rel=1e-9)
    assert _book(enough)["sortino"] is not None
    short.sample = MinSample(days=19, round_trips=30)
    assert _book(short)["sharpe"] == pytest.approx(r[:19].mean() / r[:19].std(ddof=1) * math.sqrt(252), rel=1e-9)


def test_trade_ratios_wait_for_the_minimum_round_trips() -> None:
    engine = Engine(default_capital=1e6)
    gains = [30.0 if i % 3 else -20.0 for i in range(30)]
    _trade_daily(engine, gains[:29])
    row = _book(engine)
    assert row["trades"] == 29 and row["wins"] == 19 and row["losses"] == 10  # counts are always there
    assert all(row[name] is None for name in TRADE_RATIOS)
    fresh = Engine(default_capital=1e6)
    _trade_daily(fresh, gains)
    row = _book(fresh)
    wins, losses = [g for g in gains if g > 0], [g for g in gains if g < 0]
    assert row["win_rate"] == pytest.approx(len(wins) / 30)
    assert row["profit_factor"] == pytest.approx(sum(wins) / -sum(losses))
    assert row["expectancy"] == pytest.approx(sum(gains) / 30)
    assert row["payoff_ratio"] == pytest.approx(np.mean(wins) / -np.mean(losses))


def test_config_minimums_reach_the_report(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    lines = []
    for i, ts in enumerate(_weekdays(3)):
        lines.append(
            f'{{"ts": {ts}, "account": "A", "strategy": "s", "symbol": "X", "side": "buy", "qty": 1, '
            f'"price": 100, "fill_id": "b{i}"}}'
        )
        lines.append(
            f'{{"ts": {ts + NS}, "account": "A", "strategy": "s", "symbol": "X", "side": "sell", "qty": 1, '
            f'"price": {100 + 10 * (i + 1) * (-1) ** i}, "fill_id": "s{i}"}}'
        )
    path.write_text("\n".join(lines) + "\n")
    dead = tmp_path / "dead.jsonl"

    def book(metrics: dict[str, int]) -> dict[str, object]:
        settings = Settings(state_dir=tmp_path / "state", metrics=metrics, ingest={"dead_letter": dead})
        return build_report(settings, [str(path)]).levels("book")["book"][0]

    held = book({})
    assert held["sharpe"] is None and held["win_rate"] is None and held["trades"] == 3
    shown = book({"min_days": 0, "min_round_trips": 1})
    assert shown["win_rate"] == pytest.approx(2 / 3) and shown["sharpe"] is not None
