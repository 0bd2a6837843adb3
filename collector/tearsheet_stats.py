"""The tear sheet's statistics: pure functions of a series' daily returns and its equity path.

Returns are the engine's: r_d = (equity at the end of period d − equity at the end of d−1) / capital
base, quiet periods 0, on the configured day basis (engine/daily.py), so Σ r = equity / capital and the
Sharpe of these returns is the `perf` Sharpe. Capital is not compounded (a fixed base, as the desk
allocates it), so growth is NAV = capital base + equity. Conventions otherwise follow quantstats
(`quantstats.stats`); none of these functions returns NaN or inf: undefined is None.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from statistics import NormalDist

import numpy as np

from collector.engine.daily import DAY_NS, DayBasis, period_day

VAR_CONFIDENCE = 0.95
ROLLING_WINDOWS = (126, 63, 20, 10, 5)  # periods; the longest that fits twice into the sample


def periods(first_day: int, last_day: int, basis: DayBasis) -> list[int]:
    """The period days (UTC day numbers) from `first_day` to `last_day`: every day, or Monday to Friday."""
    return [day for day in range(first_day, last_day + 1) if period_day(day * DAY_NS, basis) == day]


def daily_returns(closes: dict[int, float], days: Sequence[int], capital: float) -> np.ndarray:
    """r_d = (close_d − close_{d−1}) / capital over `days`; a day without a close keeps the previous one.

    The close before the first day is 0 (equity starts at 0), as in the engine's daily changes.
    """
    out = np.zeros(len(days))
    previous = 0.0
    for index, day in enumerate(days):
        close = closes.get(day, previous)
        out[index] = close - previous
        previous = close
    return out / capital if capital > 0 else out * math.nan


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def cagr(returns: np.ndarray, periods_per_year: int) -> float | None:
    """(1 + Σ r)^(P / n) − 1: NAV growth annualized over n periods, P a year (quantstats, not compounded)."""
    growth = 1.0 + float(returns.sum())
    if len(returns) == 0 or growth <= 0:
        return None
    return _finite(growth ** (periods_per_year / len(returns)) - 1.0)


def volatility(returns: np.ndarray, periods_per_year: int) -> float | None:
    """std(r, ddof=1) · √P (quantstats `volatility`)."""
    if len(returns) < 2:
        return None
    return _finite(float(returns.std(ddof=1)) * math.sqrt(periods_per_year))


def _central(returns: np.ndarray) -> tuple[int, float, float, float]:
    """n and the biased central moments m2, m3, m4."""
    deviations = returns - returns.mean()
    return len(returns), float((deviations**2).mean()), float((deviations**3).mean()), float((deviations**4).mean())


def skew(returns: np.ndarray) -> float | None:
    """Adjusted Fisher–Pearson skewness G1 = √(n(n−1)) / (n−2) · m3 / m2^1.5 (pandas `skew`, quantstats)."""
    n, m2, m3, _ = _central(returns) if len(returns) else (0, 0.0, 0.0, 0.0)
    if n < 3 or not m2 > 1e-30:
        return None
    return _finite(math.sqrt(n * (n - 1)) / (n - 2) * m3 / m2**1.5)


def kurtosis(returns: np.ndarray) -> float | None:
    """Excess kurtosis, bias-corrected: G2 = (n−1) / ((n−2)(n−3)) · ((n+1) · (m4 / m2² − 3) + 6) (pandas `kurt`)."""
    n, m2, _, m4 = _central(returns) if len(returns) else (0, 0.0, 0.0, 0.0)
    if n < 4 or not m2 > 1e-30:
        return None
    return _finite((n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * (m4 / m2**2 - 3.0) + 6.0))


def value_at_risk(returns: np.ndarray, confidence: float = VAR_CONFIDENCE) -> float | None:
    """Parametric daily VaR: Φ⁻¹(1 − c; μ, σ) with μ, σ (ddof=1) of the returns (quantstats `value_at_risk`)."""
    if len(returns) < 2:
        return None
    sigma = float(returns.std(ddof=1))
    if not sigma > 0:
        return None
    return _finite(NormalDist(float(returns.mean()), sigma).inv_cdf(1.0 - confidence))


def conditional_value_at_risk(returns: np.ndarray, confidence: float = VAR_CONFIDENCE) -> float | None:
    """CVaR (expected shortfall): mean of the returns below the VaR, the VaR when none is (quantstats `cvar`)."""
    var = value_at_risk(returns, confidence)
    if var is None:
        return None
    tail = returns[returns < var]
    return _finite(float(tail.mean())) if len(tail) else var


def best(returns: np.ndarray) -> float | None:
    """max r: the best period."""
    return float(returns.max()) if len(returns) else None


def worst(returns: np.ndarray) -> float | None:
    """min r: the worst period."""
    return float(returns.min()) if len(returns) else None


def exposure(returns: np.ndarray) -> float | None:
    """Share of periods with a non-zero return, i.e. with something at risk (quantstats `exposure`, unrounded)."""
    return float(np.count_nonzero(returns)) / len(returns) if len(returns) else None


def win_days(returns: np.ndarray) -> float | None:
    """Periods with r > 0 / periods with r ≠ 0 (quantstats `win_rate` on daily returns)."""
    active = np.count_nonzero(returns)
    return float((returns > 0).sum()) / active if active else None


def longest_run(signs: np.ndarray) -> int:
    """The longest run of consecutive True values (quantstats `consecutive_wins` / `_losses`)."""
    best = run = 0
    for value in signs:
        run = run + 1 if value else 0
        best = max(best, run)
    return best


def tail_ratio(returns: np.ndarray) -> float | None:
    """|95th percentile / 5th percentile| of the returns (quantstats `tail_ratio`, linear interpolation)."""
    if len(returns) < 2:
        return None
    low = float(np.quantile(returns, 0.05))
    return _finite(abs(float(np.quantile(returns, 0.95)) / low)) if low else None


def gain_to_pain(returns: np.ndarray) -> float | None:
    """Σ r / |Σ of the negative r| (quantstats `gain_to_pain_ratio`, daily)."""
    pain = -float(returns[returns < 0].sum())
    return float(returns.sum()) / pain if pain > 0 else None


def recovery_factor(equity: float, max_drawdown: float) -> float | None:
    """Net PnL / max drawdown (both currency): how many worst drawdowns the result has paid for."""
    return equity / max_drawdown if max_drawdown > 0 else None


def calmar(cagr_value: float | None, max_drawdown_fraction: float | None) -> float | None:
    """CAGR / max drawdown (as a fraction of peak NAV); None without a drawdown."""
    if cagr_value is None or not max_drawdown_fraction:
        return None
    return _finite(cagr_value / max_drawdown_fraction)


def annual_turnover(volume: float, capital: float, n_periods: int, periods_per_year: int) -> float | None:
    """Σ traded notional / capital base / years, years = n / P: how many times the capital trades a year."""
    if capital <= 0 or n_periods == 0:
        return None
    return volume / capital / (n_periods / periods_per_year)


def slippage_cost(slip_weighted: float, slip_notional: float) -> float | None:
    """Σ over fills with an arrival price of slippage_bps × notional / 10⁴ (currency, cost > 0).

    `slip_weighted` is the engine's Σ slippage_bps × notional over those fills and `slip_notional` their
    notional; fills without an arrival price cost nothing here (their slippage is unknown, not the average).
    None when no fill carries an arrival price.
    """
    return slip_weighted / 10_000.0 if slip_notional > 0 else None


def rolling_window(n: int) -> int | None:
    """The longest of 126, 63, 20, 10, 5 periods that fits twice into n periods (None: too short)."""
    return next((w for w in ROLLING_WINDOWS if n >= 2 * w), None)


def _windows(returns: np.ndarray, window: int) -> np.ndarray:
    return np.lib.stride_tricks.sliding_window_view(returns, window)


def rolling_volatility(returns: np.ndarray, window: int, periods_per_year: int) -> np.ndarray:
    """std(r over the last `window` periods, ddof=1) · √P, one value per window end."""
    return np.asarray(_windows(returns, window).std(axis=1, ddof=1) * math.sqrt(periods_per_year))


def rolling_sharpe(returns: np.ndarray, window: int, periods_per_year: int) -> np.ndarray:
    """mean / std (ddof=1) over the last `window` periods · √P; NaN where a window has no volatility."""
    windows = _windows(returns, window)
    std = windows.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(std > 0, windows.mean(axis=1) / std * math.sqrt(periods_per_year), np.nan)


def day_date(day: int) -> datetime:
    """The UTC midnight of a day number."""
    return datetime.fromtimestamp(day * 86_400, UTC)


def monthly_returns(days: Sequence[int], returns: np.ndarray) -> dict[int, dict[int, float]]:
    """{year: {month: Σ r of its periods}} (returns add up: a fixed capital base)."""
    out: dict[int, dict[int, float]] = {}
    for day, value in zip(days, returns, strict=True):
        date = day_date(day)
        months = out.setdefault(date.year, {})
        months[date.month] = months.get(date.month, 0.0) + float(value)
    return out


def correlation(matrix: np.ndarray) -> np.ndarray:
    """Pearson correlation of the rows (NaN for a row without variance, 1 on the diagonal)."""
    centered = matrix - matrix.mean(axis=1, keepdims=True)
    norms = np.sqrt((centered**2).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (centered @ centered.T) / np.outer(norms, norms)
    out = np.where(np.outer(norms > 0, norms > 0), out, np.nan)
    np.fill_diagonal(out, 1.0)
    return np.asarray(np.clip(out, -1.0, 1.0))


@dataclass(slots=True)
class Drawdown:
    """One drawdown: from the peak it starts at to the first time equity is back at that peak."""

    start_ns: int
    peak: float  # equity at the start (currency, cumulative PnL)
    trough_ns: int
    depth: float  # peak − lowest equity (currency)
    deepest: float  # max over its events of (peak − equity) / (capital base then + peak): % of peak NAV
    end_ns: int | None = None  # recovery; None while still under water

    def days(self, until_ns: int) -> float:
        """Calendar days from the start to the recovery (or to `until_ns` while not recovered)."""
        return ((self.end_ns if self.end_ns is not None else until_ns) - self.start_ns) / DAY_NS


@dataclass(slots=True)
class DrawdownTracker:
    """Every drawdown of an equity path, observed event by event (the engine's peak and max drawdown rule).

    A new high (equity > peak) restarts the clock; equity back at the peak ends the drawdown; the
    deepest of them is the engine's `max_drawdown`, and their deepest fraction its `max_drawdown_pct`.
    """

    peak: float = 0.0
    peak_ns: int = -1
    current: Drawdown | None = None
    done: list[Drawdown] = field(default_factory=list)

    def observe(self, ts_ns: int, equity: float, capital: float) -> None:
        """Equity at ts, with the series' capital base at that time (> 0)."""
        if self.peak_ns < 0:
            self.peak_ns = ts_ns
        if equity >= self.peak:
            if self.current is not None:
                self.current.end_ns = ts_ns
                self.done.append(self.current)
                self.current = None
            if equity > self.peak:
                self.peak = equity
            self.peak_ns = ts_ns
            return
        depth = self.peak - equity
        fraction = depth / (capital + self.peak)
        current = self.current
        if current is None:
            self.current = Drawdown(self.peak_ns, self.peak, ts_ns, depth, fraction)
            return
        if depth > current.depth:
            current.depth, current.trough_ns = depth, ts_ns
        if fraction > current.deepest:
            current.deepest = fraction

    def all(self) -> list[Drawdown]:
        return [*self.done, *([self.current] if self.current is not None else [])]

    def max_depth(self) -> float:
        return max((d.depth for d in self.all()), default=0.0)


def worst_drawdowns(drawdowns: Iterable[Drawdown], count: int = 5) -> list[Drawdown]:
    """The `count` deepest drawdowns in % of peak NAV, deepest first."""
    return sorted(drawdowns, key=lambda d: (d.deepest, d.depth), reverse=True)[:count]
