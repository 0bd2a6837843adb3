"""The tear sheet's statistics against independent computations (pandas, brute force, textbook constants)."""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest

from collector.engine.daily import DAY_NS, DailyChanges, period_day
from collector.tearsheet_stats import (
    DrawdownTracker,
    cagr,
    conditional_value_at_risk,
    correlation,
    daily_returns,
    exposure,
    gain_to_pain,
    kurtosis,
    longest_run,
    monthly_returns,
    periods,
    recovery_factor,
    rolling_sharpe,
    rolling_volatility,
    skew,
    tail_ratio,
    value_at_risk,
    volatility,
    win_days,
    worst_drawdowns,
)

Z_05 = -1.6448536269514722  # the standard normal's 5% quantile (any statistics table)


@pytest.fixture(scope="module")
def returns() -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.concatenate([rng.standard_t(4, 300) * 0.004 + 0.0003, np.zeros(20)])


def test_moments_match_pandas(returns: np.ndarray) -> None:
    series = pd.Series(returns)
    assert volatility(returns, 252) == pytest.approx(series.std() * math.sqrt(252), rel=1e-12)
    assert skew(returns) == pytest.approx(series.skew(), rel=1e-9)
    assert kurtosis(returns) == pytest.approx(series.kurt(), rel=1e-9)
    assert skew(returns[:2]) is None and kurtosis(returns[:3]) is None and skew(np.zeros(10)) is None


def test_var_and_cvar_are_quantstats_parametric(returns: np.ndarray) -> None:
    series = pd.Series(returns)
    var = series.mean() + Z_05 * series.std()
    assert value_at_risk(returns) == pytest.approx(var, rel=1e-9)
    assert conditional_value_at_risk(returns) == pytest.approx(series[series < var].mean(), rel=1e-12)
    assert value_at_risk(np.zeros(5)) is None


def test_cagr_is_nav_growth_per_year() -> None:
    capital = 1e6
    pnl = np.array([1000.0, -500.0, 2500.0, 0.0] * 63)  # a year of trading days
    r = pnl / capital
    nav_end = capital + pnl.sum()
    assert cagr(r, 252) == pytest.approx(nav_end / capital - 1, rel=1e-12)  # one year: the total return
    assert cagr(r[:126], 252) == pytest.approx((1 + pnl[:126].sum() / capital) ** 2 - 1, rel=1e-12)
    assert cagr(np.array([-1.5]), 252) is None  # NAV wiped out: no growth rate


def test_exposure_counts_days_with_pnl(returns: np.ndarray) -> None:
    assert exposure(returns) == pytest.approx(300 / 320)


def test_streaks_tails_and_gain_to_pain() -> None:
    r = np.array([0.01, 0.02, -0.01, 0.0, 0.03, 0.01, 0.02, -0.02, -0.01, 0.0])
    assert longest_run(r > 0) == 3 and longest_run(r < 0) == 2 and longest_run(np.array([], bool)) == 0
    assert win_days(r) == pytest.approx(5 / 8)
    assert gain_to_pain(r) == pytest.approx(0.05 / 0.04)
    series = pd.Series(r)
    assert tail_ratio(r) == pytest.approx(abs(series.quantile(0.95) / series.quantile(0.05)))
    assert recovery_factor(500.0, 250.0) == 2.0 and recovery_factor(500.0, 0.0) is None
    assert gain_to_pain(np.array([0.01, 0.0])) is None


def test_rolling_matches_pandas(returns: np.ndarray) -> None:
    series = pd.Series(returns)
    expected_vol = (series.rolling(20).std() * math.sqrt(252)).dropna().to_numpy()
    expected_sharpe = (series.rolling(20).mean() / series.rolling(20).std() * math.sqrt(252)).dropna().to_numpy()
    assert np.allclose(rolling_volatility(returns, 20, 252), expected_vol, rtol=1e-9)
    sharpe = rolling_sharpe(returns, 20, 252)
    finite = np.isfinite(expected_sharpe)
    assert np.allclose(sharpe[: len(expected_sharpe)][finite], expected_sharpe[finite], rtol=1e-9)
    assert np.isnan(sharpe[-1])  # the last window is the 20 quiet days: no volatility, no Sharpe


def test_correlation_matches_numpy() -> None:
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(5, 60))
    matrix[1] += matrix[0]
    assert np.allclose(correlation(matrix), np.corrcoef(matrix), atol=1e-12)
    matrix[4] = 0.0
    out = correlation(matrix)
    assert np.isnan(out[4, 0]) and out[4, 4] == 1.0


def test_periods_and_returns_are_the_engines_daily_changes() -> None:
    """The returns' moments equal the engine's DailyChanges on the same equity path (both day bases)."""
    rng = random.Random(11)
    start = 19_723 * DAY_NS  # 2024-01-01, a Monday
    for basis in ("trading", "calendar"):
        daily, closes, equity = DailyChanges(), {}, 0.0
        ts, first = start, None
        for _ in range(400):
            ts += rng.randrange(1, 3 * DAY_NS // 2)
            equity += rng.gauss(0, 100)
            day = period_day(ts, basis)
            daily.observe(day, equity, basis)
            closes[day] = equity
            first = day if first is None else first
        assert first is not None
        clock_day = period_day(ts + 3 * DAY_NS, basis)
        days = periods(first, clock_day, basis)
        assert all(period_day(d * DAY_NS, basis) == d for d in days)
        r = daily_returns(closes, days, 1e6)
        moments = daily.as_of(clock_day, basis)
        assert len(r) == moments.n
        assert r.mean() * 1e6 == pytest.approx(moments.mean, rel=1e-9)
        assert r.std(ddof=1) * 1e6 == pytest.approx(moments.std, rel=1e-9)
        assert r.sum() * 1e6 == pytest.approx(equity, rel=1e-9)


def test_monthly_returns_add_up() -> None:
    days = periods(19_723, 19_723 + 70, "calendar")  # 2024-01-01 .. 2024-03-11
    r = np.full(len(days), 0.001)
    months = monthly_returns(days, r)
    assert months == {2024: pytest.approx({1: 0.031, 2: 0.029, 3: 0.011})}


def _brute_drawdowns(ts: list[int], equity: list[float]) -> list[tuple[int, int, int | None, float]]:
    """(start, trough, end, depth) of every drawdown, from the running maximum (peak starts at 0)."""
    out: list[tuple[int, int, int | None, float]] = []
    peak, peak_ts, trough_ts, depth = 0.0, ts[0], ts[0], 0.0
    for t, x in zip(ts, equity, strict=True):
        if x >= peak:
            if depth > 0:
                out.append((peak_ts, trough_ts, t, depth))
            peak, peak_ts, depth = max(peak, x), t, 0.0
        elif peak - x > depth:
            depth, trough_ts = peak - x, t
    if depth > 0:
        out.append((peak_ts, trough_ts, None, depth))
    return out


def test_drawdown_tracker_matches_brute_force() -> None:
    rng = random.Random(5)
    ts = sorted(rng.sample(range(10**6), 3000))
    equity = list(np.cumsum([rng.gauss(0.05, 1) for _ in ts]))
    tracker = DrawdownTracker()
    for t, x in zip(ts, equity, strict=True):
        tracker.observe(t, x, 1000.0)
    expected = _brute_drawdowns(ts, equity)
    assert [(d.start_ns, d.trough_ns, d.end_ns) for d in tracker.all()] == [e[:3] for e in expected]
    assert [d.depth for d in tracker.all()] == pytest.approx([e[3] for e in expected])
    running_max = np.maximum.accumulate(np.concatenate([[0.0], equity]))
    assert tracker.max_depth() == pytest.approx(float((running_max[1:] - equity).max()))
    worst = worst_drawdowns(tracker.all(), 5)
    fractions = sorted((d.depth / (1000.0 + d.peak) for d in tracker.all()), reverse=True)[:5]
    assert [d.deepest for d in worst] == pytest.approx(fractions)
