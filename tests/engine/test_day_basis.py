"""Sharpe/Sortino day basis: trading (Mon–Fri, √252) vs calendar (every day, √365), against numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from collector.engine.daily import period_day, periods_between
from collector.engine.engine import Engine
from collector.engine.metrics import MinSample
from collector.model import NS, Fill

DAY = 86_400 * NS
MONDAY = 1_704_067_200 * NS  # 2024-01-01 00:00 UTC, a Monday


def test_period_days_fold_weekends_into_monday() -> None:
    monday = MONDAY // DAY
    assert [period_day(MONDAY + d * DAY + 3600 * NS, "trading") - monday for d in range(8)] == [0, 1, 2, 3, 4, 7, 7, 7]
    assert [period_day(MONDAY + d * DAY, "calendar") - monday for d in range(8)] == list(range(8))
    assert periods_between(monday + 4, monday + 7, "trading") == 0  # Friday → Monday: no quiet days
    assert periods_between(monday, monday + 14, "trading") == 9
    assert periods_between(monday, monday + 14, "calendar") == 13


def _desk(basis: str) -> Engine:
    """A book that makes or loses money on weekdays only, over three weeks; a weekend mark does nothing."""
    engine = Engine(default_capital=1e6, day_basis=basis)  # type: ignore[arg-type]
    engine.sample = MinSample(0, 0)  # the ratios of this small sample are what is checked
    pnl = [120.0, -40.0, 75.0, 10.0, -95.0, 60.0, 30.0, -20.0, 85.0, -5.0, 40.0, -70.0, 55.0, 25.0, 15.0]
    t, n = MONDAY + 10 * 3600 * NS, 0
    for week in range(3):
        for weekday in range(5):
            ts = t + (week * 7 + weekday) * DAY
            gain = pnl[n]
            engine.on_fill(Fill(ts, "A", "s", "X", "buy", 1, 100.0, f"b{n}"))
            engine.on_fill(Fill(ts + NS, "A", "s", "X", "sell", 1, 100.0 + gain, f"s{n}"))
            n += 1
    return engine


@pytest.mark.parametrize(("basis", "year", "per_week"), [("trading", 252, 5), ("calendar", 365, 7)])
def test_sharpe_and_sortino_on_each_basis(basis: str, year: int, per_week: int) -> None:
    engine = _desk(basis)
    pnl = np.array([120.0, -40.0, 75.0, 10.0, -95.0, 60.0, 30.0, -20.0, 85.0, -5.0, 40.0, -70.0, 55.0, 25.0, 15.0])
    if per_week == 7:  # calendar: the two weekend days between weeks count as 0 (none after the last Friday)
        pnl = np.concatenate([pnl[:5], [0, 0], pnl[5:10], [0, 0], pnl[10:]])
    r = pnl / 1e6
    row = engine.row(engine.series[("book", "A", "s")])
    assert row["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(year), rel=1e-9)
    downside = math.sqrt(np.mean(np.minimum(r, 0.0) ** 2))
    assert row["sortino"] == pytest.approx(r.mean() / downside * math.sqrt(year), rel=1e-9)


def test_trading_basis_does_not_understate_a_five_day_desk() -> None:
    trading = _desk("trading").row(_desk("trading").series[("book", "A", "s")])["sharpe"]
    calendar_days_252 = _desk("calendar").row(_desk("calendar").series[("book", "A", "s")])["sharpe"] / math.sqrt(
        365 / 252
    )
    assert calendar_days_252 < 0.9 * trading  # the old mix: calendar days with √252
