"""Collector self-metrics: intake counters, queue depth, lag and end-to-end latency percentiles."""

from __future__ import annotations

import numpy as np


def weighted_percentiles(values: list[float], weights: list[int], quantiles: tuple[float, ...]) -> list[float]:
    """Percentiles of values each counted `weight` times (inverted CDF, like numpy's 'inverted_cdf')."""
    order = np.argsort(values)
    sorted_values = np.asarray(values, dtype=float)[order]
    cumulative = np.cumsum(np.asarray(weights, dtype=float)[order])
    total = cumulative[-1]
    return [float(sorted_values[np.searchsorted(cumulative, q * total)]) for q in quantiles]


class LatencyWindow:
    """End-to-end latency samples (ms) since the last report; each batch counts once per fill in it."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.weights: list[int] = []
        self.max_lag_ms = 0.0

    def add(self, latency_ms: float, fills: int) -> None:
        if fills > 0:
            self.values.append(latency_ms)
            self.weights.append(fills)

    def lag(self, lag_ms: float) -> None:
        if lag_ms > self.max_lag_ms:
            self.max_lag_ms = lag_ms

    def take(self) -> dict[str, float | None]:
        """p50/p99 latency and the worst queue lag of the window, then start a new window."""
        p50 = p99 = None
        if self.values:
            p50, p99 = weighted_percentiles(self.values, self.weights, (0.5, 0.99))
        report = {"latency_p50_ms": p50, "latency_p99_ms": p99, "lag_ms": self.max_lag_ms}
        self.values, self.weights, self.max_lag_ms = [], [], 0.0
        return report
