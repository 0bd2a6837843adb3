"""Detectors: the statistics alert rules compare with a threshold. Pure code, no I/O, no clocks.

Each stateful detector folds in one observation at a time in O(1) (or O(window)) and exposes the
current statistic; the rule decides whether that statistic is alarming.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field

from collector.engine.metrics import TRADING_DAYS
from collector.optimize.statistics import psr_of_returns

MAD_TO_SIGMA = 1.4826  # MAD × this estimates σ for normal data


@dataclass(slots=True)
class SlippageHistory:
    """The slippage window (bps) of one slippage watch, as plain data: its checkpoint form.

    The evaluator keeps the live windows of all watches in arrays (collector/alerts/windows.py:
    the z-score of each new fill against the window before it) and loads/saves them from/to this.
    """

    window: int
    min_samples: int
    values: deque[float] = field(default_factory=deque)  # in arrival order
    ordered: list[float] = field(default_factory=list)  # the same values, sorted
    last_z: float | None = None
    median: float = 0.0
    scale: float = 0.0  # 1.4826 × MAD
    stale: int = 0  # fills since median/scale were computed


@dataclass(slots=True)
class Cusum:
    """Tabular CUSUM (Page 1954) for a drop in the mean, as river's `drift.CUSUM` in mode down.

    μ₀ and σ are estimated over the first `warmup` observations, then frozen.
    S⁻ᵢ = max(0, S⁻ᵢ₋₁ − (xᵢ − μ₀ + k)) with k = slack·σ; the statistic is S⁻/σ (in σ units),
    alarming above `threshold` (h/σ, 5 by default).
    """

    warmup: int = 30
    slack: float = 0.5
    baseline: list[float] = field(default_factory=list)
    mean: float = 0.0
    sigma: float = 0.0
    s_low: float = 0.0

    def add(self, x: float) -> float | None:
        """The statistic after `x` (None during warm-up or with a constant baseline)."""
        if len(self.baseline) < self.warmup:
            self.baseline.append(x)
            if len(self.baseline) == self.warmup:
                self.mean = statistics.fmean(self.baseline)
                self.sigma = statistics.stdev(self.baseline)
            return None
        if self.sigma <= 0:
            return None
        self.s_low = max(0.0, self.s_low - (x - self.mean + self.slack * self.sigma))
        return self.s_low / self.sigma

    @property
    def value(self) -> float | None:
        return self.s_low / self.sigma if len(self.baseline) >= self.warmup and self.sigma > 0 else None


@dataclass(slots=True)
class PageHinkley:
    """Page-Hinkley test for a drop in the mean (river's `drift.PageHinkley` fed with −x).

    x̄ₜ is the running mean of −x; sum = max(0, α·sum + (−xₜ − x̄ₜ − δ)); alarming when sum ≥ λ
    after `min_instances` observations. The statistic is `sum` (same units as x).
    """

    min_instances: int = 30
    delta: float = 0.005
    alpha: float = 1 - 1e-4
    n: int = 0
    mean: float = 0.0
    total: float = 0.0

    def add(self, x: float) -> float | None:
        y = -x
        self.n += 1
        self.mean += (y - self.mean) / self.n
        self.total = max(0.0, self.alpha * self.total + (y - self.mean - self.delta))
        return self.total if self.n >= self.min_instances else None

    @property
    def value(self) -> float | None:
        return self.total if self.n >= self.min_instances else None


@dataclass(slots=True)
class DailyReturns:
    """The last `window` daily returns (equity change ÷ capital; quiet days count as 0)."""

    window: int
    returns: deque[float] = field(default_factory=deque)

    def push(self, value: float) -> None:
        self.returns.append(value)
        if len(self.returns) > self.window:
            self.returns.popleft()

    def push_zeros(self, count: int) -> None:
        """`count` quiet days (more than a window's worth only empties it)."""
        for _ in range(min(count, self.window)):
            self.push(0.0)

    def sharpe(self, min_days: int) -> float | None:
        """Annualized Sharpe (√252, ddof=1) of the closed days in the window."""
        if len(self.returns) < max(min_days, 2):
            return None
        std = statistics.stdev(self.returns)
        return statistics.fmean(self.returns) / std * math.sqrt(TRADING_DAYS) if std > 0 else None

    def psr(self, min_days: int, benchmark_annual_sharpe: float = 0.0) -> float | None:
        """PSR of the window's daily returns against an annualized benchmark Sharpe."""
        if len(self.returns) < max(min_days, 3):
            return None
        return psr_of_returns(list(self.returns), benchmark_annual_sharpe / math.sqrt(TRADING_DAYS))


@dataclass(slots=True)
class TradeWindow:
    """Net PnL of the last `size` round trips: win rate, expectancy, profit factor, sum over the window.

    Running sums are updated as trips enter and leave the window, so a metric costs O(1).
    """

    size: int
    pnls: deque[float] = field(default_factory=deque)
    wins: int = 0
    gains: float = 0.0  # Σ positive net PnL in the window
    losses: float = 0.0  # Σ negative net PnL in the window (≤ 0)

    def add(self, net_pnl: float) -> None:
        # inline (no helper call): it runs for every round trip of every windowed rule's series
        if net_pnl > 0:
            self.wins += 1
            self.gains += net_pnl
        elif net_pnl < 0:
            self.losses += net_pnl
        pnls = self.pnls
        pnls.append(net_pnl)
        if len(pnls) > self.size:
            gone = pnls.popleft()
            if gone > 0:
                self.wins -= 1
                self.gains -= gone
            elif gone < 0:
                self.losses -= gone

    def metric(self, name: str) -> float | None:
        count = len(self.pnls)
        if not count:
            return None
        if name == "win_rate":
            return self.wins / count
        if name == "expectancy":
            return (self.gains + self.losses) / count
        if name == "net_pnl":
            return self.gains + self.losses
        if name == "profit_factor":
            return self.gains / -self.losses if self.losses < 0 else None
        raise ValueError(f"no windowed form of {name}")


WINDOWED_METRICS = ("win_rate", "expectancy", "net_pnl", "profit_factor")
