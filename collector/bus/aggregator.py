"""The aggregator: every partition's records, merged by global seq up to the lowest watermark, on one Engine.

Records of seq ≤ min over partitions of their last watermark are complete (no partition can still send
an earlier one), so they and the marks are applied in seq order with the kernel's `_apply_chain(first=1)`
(collector/engine/partition.py): strategy, account and portfolio series equal one engine's, bit for bit.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from collector.bus.records import Records
from collector.engine import layout as L
from collector.engine.engine import BatchResult, Engine
from collector.engine.partition import RF_WIDTH, RI_WIDTH, apply_records
from collector.engine.positions import RoundTrip


@dataclass(slots=True)
class Applied:
    """What one `apply` booked, in global order: how many records and marks, the round trips, and the stretch
    as a batch of `Engine.on_events` for the alert rules (AlertEngine.on_batch; None when nothing was applied)."""

    records: int
    marks: int
    trips: list[RoundTrip]
    batch: BatchResult | None = None


@dataclass(slots=True)
class _Pending:
    records: Records
    position: int  # its stream sequence
    done: int = 0  # its rows already applied
    marks_done: int = 0


@dataclass
class Aggregates:
    partitions: int
    engine: Engine
    applied: int = -1  # the last global seq applied
    watermarks: list[int] = field(default_factory=list)
    pending: list[deque[_Pending]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.watermarks:
            self.watermarks = [-1] * self.partitions
        self.pending = [deque() for _ in range(self.partitions)]

    def add(self, records: Records, position: int = 0) -> None:
        """One worker message (at stream sequence `position`); rows at or below `applied` (a replay) are skipped."""
        p = records.partition
        if records.watermark <= self.watermarks[p]:
            return
        self.watermarks[p] = records.watermark
        item = _Pending(records, position)
        item.done = bisect.bisect_right(records.seq, self.applied)
        item.marks_done = bisect.bisect_right(records.marks.seq, self.applied)
        self.pending[p].append(item)

    def apply(self) -> Applied:
        """Apply everything complete (seq ≤ the lowest watermark)."""
        upto = min(self.watermarks)
        if upto <= self.applied:
            return Applied(0, 0, [])
        seq: list[int] = []
        keys: list[tuple[str, str, str] | str] = []
        ts: list[int] = []
        price: list[float] = []
        floats: list[np.ndarray] = []
        ints: list[np.ndarray] = []
        marks: list[bool] = []
        trips: list[tuple[int, RoundTrip]] = []
        for queue in self.pending:
            while queue:
                item = queue[0]
                r = item.records
                end = bisect.bisect_right(r.seq, upto)
                mark_end = bisect.bisect_right(r.marks.seq, upto)
                a, m = item.done, item.marks_done
                seq += r.seq[a:end]
                keys += zip(r.account[a:end], r.strategy[a:end], r.symbol[a:end], strict=True)
                ts += r.ts[a:end]
                price += r.price[a:end]
                floats.append(r.rf()[a:end])
                ints.append(r.ri()[a:end])
                marks += [False] * (end - a)
                trips += self._trips(r, a, end)
                seq += r.marks.seq[m:mark_end]
                keys += r.marks.symbol[m:mark_end]
                ts += r.marks.ts[m:mark_end]
                price += r.marks.price[m:mark_end]
                marks += [True] * (mark_end - m)
                if r.watermark > upto:
                    item.done, item.marks_done = end, mark_end
                    break
                queue.popleft()
        n_marks = sum(marks)
        n = len(seq)
        rf = np.zeros((n, RF_WIDTH), L.FLOAT)
        ri = np.zeros((n, RI_WIDTH), L.INT)
        is_mark = np.array(marks, bool)
        rf[~is_mark] = np.concatenate(floats) if floats else rf[:0]
        ri[~is_mark] = np.concatenate(ints) if ints else ri[:0]
        order = np.argsort(np.array(seq, L.INT), kind="stable")
        keyed = [keys[i] for i in order.tolist()]
        rf, ri = rf[order], ri[order]
        trips.sort(key=lambda item: item[0])
        at = {s: i for i, s in enumerate(np.array(seq, L.INT)[order].tolist())}  # global seq → event index
        batch = apply_records(
            self.engine,
            is_mark[order],
            keyed,
            np.array(ts, L.INT)[order],
            np.array(price, L.FLOAT)[order],
            rf,
            ri,
            {at[s]: trip for s, trip in trips},
        )
        self.applied = upto
        return Applied(n - n_marks, n_marks, [trip for _, trip in trips], batch)

    def resume_position(self, last: int) -> int:
        """Where to read again after a restart (`last` = the last message read): before the oldest one not wholly
        applied. Restored with watermarks = [applied] × P, the re-read skips what was applied."""
        pending = [queue[0].position for queue in self.pending if queue]
        return min(pending) - 1 if pending else last

    @staticmethod
    def _trips(r: Records, a: int, end: int) -> list[tuple[int, RoundTrip]]:
        t = r.trips
        lo, hi = bisect.bisect_left(t.row, a), bisect.bisect_left(t.row, end)
        return [
            (
                r.seq[row],
                RoundTrip(
                    r.account[row],
                    r.strategy[row],
                    r.symbol[row],
                    t.direction[j],
                    t.entry_ts[j],
                    r.ts[row],
                    t.entry_price[j],
                    t.exit_price[j],
                    t.qty[j],
                    t.gross[j],
                    t.fees[j],
                    t.net[j],
                ),
            )
            for j, row in zip(range(lo, hi), t.row[lo:hi], strict=True)
        ]
