"""Daily equity changes, accumulated in O(1) per event: Welford moments plus the downside sum.

A series' days run from its first fill's UTC day to the engine clock's day. Each day's change is
equity at its end minus equity at the previous day's end (0 before the first fill); quiet days
count with a change of 0. The open day is closed provisionally whenever metrics are read.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_NS = 86_400 * 1_000_000_000


@dataclass(slots=True)
class Moments:
    """Count, mean, sum of squared deviations (Welford) and Σ min(x, 0)² of daily changes."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    down_sq: float = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)
        if x < 0:
            self.down_sq += x * x

    def add_zeros(self, k: int) -> None:
        """Merge k zero changes at once (Chan et al. pairwise update)."""
        if k <= 0:
            return
        n = self.n + k
        delta = -self.mean
        self.m2 += delta * delta * self.n * k / n
        self.mean += delta * k / n
        self.n = n

    def copy(self) -> Moments:
        return Moments(self.n, self.mean, self.m2, self.down_sq)

    @property
    def std(self) -> float:
        return (self.m2 / (self.n - 1)) ** 0.5 if self.n > 1 and self.m2 > 0 else 0.0

    @property
    def downside(self) -> float:
        """sqrt(mean(min(x, 0)²)) over all n values."""
        return (self.down_sq / self.n) ** 0.5 if self.n else 0.0


@dataclass(slots=True)
class DailyChanges:
    day: int = -1  # UTC day number of the open day; -1 before the first event
    prev_close: float = 0.0  # equity at the end of the previous day
    last: float = 0.0  # latest equity
    closed: Moments | None = None

    def observe(self, ts_ns: int, equity: float) -> None:
        day = ts_ns // DAY_NS
        if day > self.day:
            if self.day < 0:
                self.closed = Moments()
            else:
                self._close(day)
            self.day = day
        self.last = equity  # a late event counts in the open day

    def _close(self, new_day: int) -> None:
        assert self.closed is not None
        self.closed.add(self.last - self.prev_close)
        self.closed.add_zeros(new_day - self.day - 1)
        self.prev_close = self.last

    def as_of(self, clock_day: int) -> Moments:
        """Moments including the open day and the quiet days up to `clock_day`."""
        if self.closed is None:
            return Moments()
        moments = self.closed.copy()
        moments.add(self.last - self.prev_close)
        moments.add_zeros(clock_day - self.day)
        return moments
