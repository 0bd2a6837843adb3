"""Heartbeat `perf` points: an unchanged series is written again once `run.heartbeat` of event time passed.

`perf` is otherwise written only when a series changes, so a strategy that stopped trading would
have no point inside a Grafana alert's or panel's time range and `last()` would see nothing. With
the heartbeat every series with fills has a point at least every `interval` of event time:
a series is due when now − last_written ≥ interval. The scan over all series runs only when the
oldest write can be due (next = min(last_written) + interval), so it costs O(series) about once
per interval, not per flush.
"""

from __future__ import annotations

from collections.abc import Iterable

from collector.engine.series import Series


class Heartbeat:
    def __init__(self, interval_s: float) -> None:
        self.interval_ns = int(interval_s * 1e9)
        self._last: dict[tuple[str, str, str], int] = {}  # series key → event time of its last perf point
        self._next_ns = 0  # no series can be due before this event time

    def due(self, changed: set[Series], every: Iterable[Series], now_ns: int) -> set[Series]:
        """The series to write at event time `now_ns`: the changed ones plus those not written for an interval."""
        for series in changed:
            self._last[series.key] = now_ns
        if now_ns < self._next_ns:
            return changed
        out = set(changed)
        oldest = now_ns
        for series in every:
            if not series.fills:
                continue  # nothing to report yet (the portfolio before the first fill)
            last = self._last.get(series.key)
            if last is None or now_ns - last >= self.interval_ns:
                out.add(series)
                self._last[series.key] = last = now_ns
            oldest = min(oldest, last)
        self._next_ns = oldest + self.interval_ns
        return out
