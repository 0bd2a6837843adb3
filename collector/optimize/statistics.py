"""Statistical guards (Bailey & López de Prado), pure functions. SR is per period, not annualized.

Kurtosis is the non-excess one (normal = 3), as in the papers and mlfinlab; see
docs/metrics.md for the LEAN/quantstats variant that uses excess kurtosis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

_NORMAL = NormalDist()


def sample_moments(returns: Sequence[float]) -> tuple[float, float, float, float] | None:
    """(SR, skewness γ₃, kurtosis γ₄, n) of per-period returns; SR = mean / std(ddof=1).

    Skewness and kurtosis are the population (biased) moment ratios, as scipy.stats.skew /
    kurtosis(fisher=False) compute them. None with fewer than 3 returns or zero variance.
    """
    n = len(returns)
    if n < 3:
        return None
    mean = math.fsum(returns) / n
    deviations = [r - mean for r in returns]
    m2 = math.fsum(d * d for d in deviations) / n
    if m2 <= 0:
        return None
    m3 = math.fsum(d**3 for d in deviations) / n
    m4 = math.fsum(d**4 for d in deviations) / n
    std = math.sqrt(m2 * n / (n - 1))
    return mean / std, m3 / m2**1.5, m4 / m2**2, float(n)


def sharpe_std_error(sr: float, n: float, skew: float = 0.0, kurtosis: float = 3.0) -> float:
    """σ̂(SR) = sqrt((1 − γ₃·SR + ((γ₄ − 1)/4)·SR²) / (n − 1))."""
    return math.sqrt(max(0.0, 1 - skew * sr + (kurtosis - 1) / 4 * sr * sr) / (n - 1))


def probabilistic_sharpe_ratio(
    sr: float, n: float, benchmark_sr: float = 0.0, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """PSR(SR*) = Φ((SR − SR*) / σ̂(SR)): the probability that the true SR exceeds SR*."""
    error = sharpe_std_error(sr, n, skew, kurtosis)
    if error == 0:
        return 1.0 if sr > benchmark_sr else 0.0
    return _NORMAL.cdf((sr - benchmark_sr) / error)


def psr_of_returns(returns: Sequence[float], benchmark_sr: float = 0.0) -> float | None:
    """PSR of a return series against SR* (per period), with its own skewness and kurtosis."""
    moments = sample_moments(returns)
    if moments is None:
        return None
    sr, skew, kurtosis, n = moments
    return probabilistic_sharpe_ratio(sr, n, benchmark_sr, skew, kurtosis)


EULER_GAMMA = 0.5772156649015329


def minimum_track_record_length(
    sr: float, benchmark_sr: float = 0.0, skew: float = 0.0, kurtosis: float = 3.0, alpha: float = 0.05
) -> float | None:
    """MinTRL = 1 + (1 − γ₃·SR + ((γ₄ − 1)/4)·SR²) · (Z⁻¹(1 − α) / (SR − SR*))², in observations.

    How many returns are needed before SR > SR* at confidence 1 − α; None when SR ≤ SR*.
    """
    if sr <= benchmark_sr:
        return None
    z = _NORMAL.inv_cdf(1 - alpha)
    return 1 + (1 - skew * sr + (kurtosis - 1) / 4 * sr * sr) * (z / (sr - benchmark_sr)) ** 2


def expected_max_sharpe(trial_sr_variance: float, trials: int) -> float:
    """SR₀ = sqrt(V[SR_k]) · ((1 − γ)·Z⁻¹(1 − 1/N) + γ·Z⁻¹(1 − 1/(N·e))): the best SR of N unskilled trials."""
    if trials < 2:
        return 0.0
    return math.sqrt(trial_sr_variance) * (
        (1 - EULER_GAMMA) * _NORMAL.inv_cdf(1 - 1 / trials) + EULER_GAMMA * _NORMAL.inv_cdf(1 - 1 / (trials * math.e))
    )


def deflated_sharpe_ratio(
    sr: float, n: float, trial_srs: list[float], skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """DSR = PSR(SR₀): PSR against the Sharpe the best of the trials would reach by luck.

    V[SR_k] is the population variance (ddof = 0) of the trials' SRs, as mlfinlab computes it;
    the number of trials is every configuration evaluated, kept or discarded.
    """
    mean = math.fsum(trial_srs) / len(trial_srs)
    variance = math.fsum((s - mean) ** 2 for s in trial_srs) / len(trial_srs)
    return probabilistic_sharpe_ratio(sr, n, expected_max_sharpe(variance, len(trial_srs)), skew, kurtosis)
