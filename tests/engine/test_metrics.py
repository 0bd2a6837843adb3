"""Metric functions against published values (empyrical, NautilusTrader) and independent numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.engine import metrics
from collector.engine.daily import DAY_NS, Moments
from collector.engine.engine import Engine
from collector.engine.metrics import MinSample
from collector.model import NS, Fill, Mark

EMPYRICAL_MIXED = [1, 10, -4, 2, 3, 2, 1, -10]  # empyrical's mixed_returns without the leading NaN, in %


def _moments(values: list[float]) -> Moments:
    moments = Moments()
    for value in values:
        moments.add(value)
    return moments


@pytest.mark.parametrize(
    ("returns", "sharpe", "sortino"),
    [
        ([r / 100 for r in EMPYRICAL_MIXED], 1.7238613961706866, 2.605531251673693),  # empyrical test_stats.py
        ([0.01, -0.02, 0.015, -0.005, 0.025], 4.48998886412873, None),  # nautilus sharpe_ratio.rs
        ([-0.01, 0.02, -0.015, 0.005, -0.02], None, -5.273224492824493),  # nautilus sortino_ratio.rs
        ([r / 100 for r in (0, -6, -7, -1, -9, -2, -6, -8, -5)], -24.406808633910085, -13.532743075043401),
    ],
)
def test_published_values(returns: list[float], sharpe: float | None, sortino: float | None) -> None:
    m = _moments(returns)
    if sharpe is not None:
        assert metrics.sharpe_ratio(m.mean, m.std, m.n) == pytest.approx(sharpe, rel=1e-12)
    if sortino is not None:
        assert metrics.sortino_ratio(m.mean, m.downside, m.n) == pytest.approx(sortino, rel=1e-12)


@settings(max_examples=200)
@given(
    st.lists(st.floats(min_value=-0.2, max_value=0.2), min_size=2, max_size=40),
    st.integers(min_value=0, max_value=30),
)
def test_moments_with_quiet_days_match_numpy(values: list[float], zeros: int) -> None:
    m = _moments(values)
    m.add_zeros(zeros)
    full = np.array(values + [0.0] * zeros)
    assert m.n == len(full)
    assert m.mean == pytest.approx(full.mean(), abs=1e-12)
    assert m.std == pytest.approx(full.std(ddof=1), rel=1e-9, abs=1e-12)
    assert m.downside == pytest.approx(math.sqrt(np.mean(np.minimum(full, 0) ** 2)), rel=1e-9, abs=1e-12)


def test_engine_sharpe_from_daily_equity_changes() -> None:
    """Daily returns of a book driven by marks equal the changes/capital; quiet days count as 0 (calendar basis)."""
    returns = [0.01, -0.02, 0.015, -0.005, 0.025]
    t0 = 1_700_006_400 * NS  # 00:00 UTC + 2 h
    engine = Engine(default_capital=1e6, day_basis="calendar")
    engine.sample = MinSample(0, 0)  # the ratios of this small sample are what is checked
    engine.on_fill(Fill(t0, "A", "s", "X", "buy", 1, 1e6, "1"))
    price = 1e6
    days = [0, 1, 2, 4, 5]  # day 3 is quiet
    for day, r in zip(days, returns, strict=True):
        price += r * 1e6
        engine.on_mark(Mark(t0 + day * DAY_NS + 3600 * NS, "X", price))
    row = engine.row(engine.series[("book", "A", "s")])
    expected = np.array([0.01, -0.02, 0.015, 0.0, -0.005, 0.025])
    assert row["sharpe"] == pytest.approx(expected.mean() / expected.std(ddof=1) * math.sqrt(365), rel=1e-9)
    downside = math.sqrt(np.mean(np.minimum(expected, 0) ** 2))
    assert row["sortino"] == pytest.approx(expected.mean() / downside * math.sqrt(365), rel=1e-9)
    assert row["return_cum"] == pytest.approx(0.025, rel=1e-9)


@pytest.mark.parametrize(
    ("function", "args", "expected"),
    [
        (metrics.win_rate, (0, 0), None),
        (metrics.profit_factor, (10.0, 0.0), None),
        (metrics.profit_factor, (10.0, -4.0), 2.5),
        (metrics.payoff_ratio, (5.0, -2.0), 2.5),
        (metrics.payoff_ratio, (None, -2.0), None),
        (metrics.sharpe_ratio, (0.01, 0.0, 10), None),
        (metrics.sharpe_ratio, (0.01, 0.02, 1), None),
        (metrics.weighted_mean, (5.0, 0.0), None),
        (metrics.finite_or_none, (math.inf,), None),
    ],
)
def test_undefined_cases(function, args, expected) -> None:
    assert function(*args) == expected


def test_freqtrade_expectancy_known_value() -> None:
    pnl = [100, 200, 50, -150, 300, -100, 80, -30]  # freqtrade test_btanalysis: expectancy 56.25
    assert metrics.expectancy(sum(pnl), len(pnl)) == 56.25
