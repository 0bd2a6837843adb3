"""Detectors against independent computations and published values."""

from __future__ import annotations

import math
import random
import statistics

import numpy as np
import pytest

from collector.alerts.detectors import Cusum, DailyReturns, PageHinkley, SlippageHistory, TradeWindow
from collector.alerts.windows import SlippageWindows, sorted_mad, sorted_median
from collector.optimize.statistics import probabilistic_sharpe_ratio, psr_of_returns, sample_moments


def robust_zscore(x: float, history: list[float]) -> float | None:
    """(x − median(h)) / (1.4826 · MAD(h)) written out with `statistics`; None without spread."""
    median = statistics.median(history)
    mad = statistics.median(abs(h - median) for h in history)
    return None if mad == 0 else (x - median) / (1.4826 * mad)


class _Window:
    """One slot of SlippageWindows, fed one fill at a time."""

    def __init__(self, window: int, min_samples: int) -> None:
        self.windows = SlippageWindows(window)
        self.slot = self.windows.load(SlippageHistory(window, min_samples), math.inf, False)
        self.shape = (window, min_samples)

    def add(self, x: float) -> float | None:
        return self.windows.add(self.slot, x)

    def history(self) -> SlippageHistory:
        saved = SlippageHistory(*self.shape)
        self.windows.save(self.slot, saved)
        return saved


def test_slippage_window_flags_an_outlier_after_warm_up() -> None:
    window = _Window(window=50, min_samples=20)
    rng = random.Random(1)
    zs = [window.add(rng.gauss(1.0, 0.3)) for _ in range(60)]
    assert all(z is None for z in zs[:20]) and all(z is not None and abs(z) < 5 for z in zs[20:])
    outlier = window.add(12.0)
    assert outlier is not None and outlier > 20
    assert len(window.history().values) == 50


def _cusum_reference(xs: list[float], warmup: int, slack: float) -> list[float | None]:
    """CUSUM-down written out directly: frozen mean/σ of the first `warmup`, S = max(0, S − (x − μ + kσ))."""
    mu, sigma = float(np.mean(xs[:warmup])), float(np.std(xs[:warmup], ddof=1))
    out: list[float | None] = [None] * warmup
    s = 0.0
    for x in xs[warmup:]:
        s = max(0.0, s - (x - mu + slack * sigma))
        out.append(s / sigma)
    return out


def test_cusum_matches_the_formula_and_detects_a_drop() -> None:
    rng = random.Random(12345)
    xs = [rng.gauss(0, 1) for _ in range(200)] + [rng.gauss(-3, 1) for _ in range(50)]
    cusum = Cusum(warmup=30, slack=0.5)
    got = [cusum.add(x) for x in xs]
    want = _cusum_reference(xs, 30, 0.5)
    assert got[:30] == want[:30]
    np.testing.assert_allclose(np.array(got[30:], float), np.array(want[30:], float), rtol=1e-12)
    first_alarm = next(i for i, v in enumerate(got) if v is not None and v > 5)
    assert 200 <= first_alarm <= 205  # a 3σ drop is caught within a few trades
    assert max(v for v in got[30:200] if v is not None) < 5  # no false alarm before it


def _page_hinkley_reference(xs: list[float], delta: float, alpha: float) -> list[float]:
    """scikit-multiflow's PageHinkley.add_element, transcribed (fed −x to watch for drops)."""
    mean, total, out = 0.0, 0.0, []
    for count, x in enumerate(xs, 1):
        y = -x
        mean = mean + (y - mean) / count
        total = max(0.0, alpha * total + (y - mean - delta))
        out.append(total)
    return out


def test_page_hinkley_matches_scikit_multiflow_and_detects_a_drop() -> None:
    rng = random.Random(12345)
    xs = [float(v) for v in rng.choices([4, 5, 6, 7], k=1000) + rng.choices([0, 1], k=1000)]  # a drop at 1000
    ph = PageHinkley(min_instances=30, delta=0.005, alpha=1 - 1e-4)
    got = [ph.add(x) for x in xs]
    want = _page_hinkley_reference(xs, 0.005, 1 - 1e-4)
    np.testing.assert_allclose(np.array(got[29:], float), np.array(want[29:]), rtol=1e-12)
    first = next(i for i, v in enumerate(got) if v is not None and v >= 50)
    assert 1000 <= first <= 1020


def test_daily_returns_window_with_quiet_days_matches_numpy() -> None:
    days = DailyReturns(window=6)
    days.push(1e-4)
    days.push_zeros(2)
    for value in (3e-4, -2e-4, 5e-4, 1e-4):
        days.push(value)
    expected = np.array([0.0, 0.0, 3e-4, -2e-4, 5e-4, 1e-4])  # the oldest fell out of the window
    assert list(days.returns) == pytest.approx(list(expected))
    assert days.sharpe(min_days=5) == pytest.approx(expected.mean() / expected.std(ddof=1) * math.sqrt(252))
    assert days.sharpe(min_days=7) is None
    days.push_zeros(10**9)  # a long silence only empties the window
    assert list(days.returns) == [0.0] * 6 and days.sharpe(min_days=2) is None  # no spread


def test_psr_published_values() -> None:
    # mlfinlab test_backtest_statistics: SR=1.14, SR*=1, n=250, normal → 0.95727
    assert probabilistic_sharpe_ratio(1.14, 250, 1.0, 0.0, 3.0) == pytest.approx(0.95727, abs=1e-5)
    # Bailey & López de Prado (2012) examples, as in rubenbriones' tests
    assert probabilistic_sharpe_ratio(0.458, 24, 0.0) == pytest.approx(0.982, abs=1e-3)
    assert probabilistic_sharpe_ratio(0.458, 24, 0.0, -2.448, 10.164) == pytest.approx(0.913, abs=1e-3)


def test_sample_moments_match_numpy() -> None:
    rng = np.random.default_rng(9)
    returns = list(rng.standard_t(4, 300) * 0.01 + 0.001)
    sr, skew, kurt, n = sample_moments(returns) or (0, 0, 0, 0)
    r = np.array(returns)
    d = r - r.mean()
    assert sr == pytest.approx(r.mean() / r.std(ddof=1))
    assert skew == pytest.approx(np.mean(d**3) / np.mean(d**2) ** 1.5)
    assert kurt == pytest.approx(np.mean(d**4) / np.mean(d**2) ** 2)
    assert n == 300
    assert psr_of_returns([0.01, 0.01]) is None


def test_trade_window_metrics_match_numpy() -> None:
    window = TradeWindow(5)
    for pnl in [10.0, -5.0, 3.0, -2.0, 8.0, -4.0, 6.0]:
        window.add(pnl)
    last = np.array([3.0, -2.0, 8.0, -4.0, 6.0])
    assert window.metric("win_rate") == pytest.approx(np.mean(last > 0))
    assert window.metric("expectancy") == pytest.approx(last.mean())
    assert window.metric("net_pnl") == pytest.approx(last.sum())
    assert window.metric("profit_factor") == pytest.approx(last[last > 0].sum() / -last[last < 0].sum())


def test_mintrl_and_dsr_published_values() -> None:
    from collector.optimize.statistics import deflated_sharpe_ratio, expected_max_sharpe, minimum_track_record_length

    # mlfinlab test_backtest_statistics
    assert minimum_track_record_length(1.14, 1.0, 0.0, 3.0, 0.05) == pytest.approx(228.73497, abs=1e-4)
    trials = [3.5, 1.01, 1.02]
    variance = float(np.var(trials))
    assert expected_max_sharpe(variance, 3) == pytest.approx(0.99902, abs=1e-5)
    assert deflated_sharpe_ratio(1.14, 250, trials) == pytest.approx(0.95836, abs=1e-5)
    assert minimum_track_record_length(0.5, 1.0) is None


def test_sorted_median_and_mad_equal_statistics_on_random_windows() -> None:
    rng = random.Random(7)
    for _ in range(500):
        xs = [rng.choice((rng.gauss(0, 2), float(rng.randint(-3, 3)))) for _ in range(rng.randint(1, 80))]
        ordered = np.array([*sorted(xs), 99.0])  # a slot's row is longer than its window
        median = statistics.median(xs)
        assert sorted_median(ordered, len(xs)) == median
        assert sorted_mad(ordered, len(xs), median) == statistics.median(abs(x - median) for x in xs)


def test_slippage_window_z_equals_the_robust_zscore_of_its_window() -> None:
    window = _Window(window=40, min_samples=10)  # refreshed every 2 fills
    rng = random.Random(2)
    past: list[float] = []
    for i in range(200):
        x = rng.choice((rng.gauss(1.0, 0.4), float(rng.randint(0, 2))))  # ties: equal values enter and leave
        z = window.add(x)
        saved = window.history()
        if i >= 10 and saved.stale == 1:  # median and MAD were just recomputed from the window
            assert z == pytest.approx(robust_zscore(x, past[-40:]), rel=1e-12)
        past.append(x)
        assert list(saved.values) == past[-40:] and saved.ordered == sorted(saved.values)


def test_slippage_window_continues_from_its_checkpoint_form() -> None:
    rng = random.Random(4)
    xs = [rng.gauss(0.5, 1.0) for _ in range(150)]
    straight = _Window(window=30, min_samples=5)
    expected = [straight.add(x) for x in xs]
    first = _Window(window=30, min_samples=5)
    got = [first.add(x) for x in xs[:70]]
    second = _Window(window=30, min_samples=5)
    second.windows.load(
        first.history(), math.inf, False
    )  # slot 1: the saved window, in a fresh set of arrays' second slot
    second.slot = 1
    got += [second.add(x) for x in xs[70:]]
    assert got == expected
