"""Daily equity changes, accumulated in O(1) per event: Welford moments plus the downside sum.

A series' days run from its first fill's UTC day to the engine clock's day. Each day's change is
equity at its end minus equity at the previous day's end (0 before the first fill); quiet days
count with a change of 0. The open day is closed provisionally whenever metrics are read.

The day basis says which days are periods. `calendar`: every UTC day (√365 a year). `trading`
(the default): Monday to Friday (√252 a year); a weekend's changes count in the Monday after it,
and weekends add no quiet days. Holidays are not known: a weekday without trading counts as 0.
Days are numbered as UTC calendar days under both bases (a weekend day maps to its Monday), so
state written under one basis stays readable under the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DAY_NS = 86_400 * 1_000_000_000
DayBasis = Literal["trading", "calendar"]
PERIODS_PER_YEAR: dict[str, int] = {"trading": 252, "calendar": 365}


def period_day(ts_ns: int, basis: DayBasis) -> int:
    """The UTC day number of the period holding ts (trading: Saturday and Sunday → the next Monday)."""
    day = ts_ns // DAY_NS
    if basis == "trading":
        weekday = (day + 3) % 7  # day 0 (1970-01-01) was a Thursday; Monday = 0
        if weekday >= 5:
            day += 7 - weekday
    return day


def _weekdays_before(day: int) -> int:
    """Monday-to-Friday days in [−3, day) (day −3 = Monday 1969-12-29)."""
    weeks, rest = divmod(day + 3, 7)
    return weeks * 5 + min(rest, 5)


def periods_between(first: int, last: int, basis: DayBasis) -> int:
    """Periods strictly between two period days (the quiet days that count as 0)."""
    if last <= first + 1:
        return 0
    if basis == "calendar":
        return last - first - 1
    return _weekdays_before(last) - _weekdays_before(first + 1)


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

    def observe(self, day: int, equity: float, basis: DayBasis) -> None:
        """Equity at an event of period day `day` (see `period_day`)."""
        if day > self.day:
            if self.day < 0:
                self.closed = Moments()
            else:
                self._close(day, basis)
            self.day = day
        self.last = equity  # a late event counts in the open day

    def _close(self, new_day: int, basis: DayBasis) -> None:
        assert self.closed is not None
        self.closed.add(self.last - self.prev_close)
        self.closed.add_zeros(periods_between(self.day, new_day, basis))
        self.prev_close = self.last

    def as_of(self, clock_day: int, basis: DayBasis) -> Moments:
        """Moments including the open day and the quiet days up to period day `clock_day`."""
        if self.closed is None:
            return Moments()
        moments = self.closed.copy()
        moments.add(self.last - self.prev_close)
        moments.add_zeros(periods_between(self.day, clock_day + 1, basis))
        return moments
