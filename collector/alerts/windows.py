"""The slippage windows of all watched series in arrays, updated a batch at a time by compiled code (numba).

Each window (one per slippage watch, a "slot") is kept twice: in arrival order in a ring buffer
(to drop the oldest) and sorted (binary search and a shift: O(log n) comparisons per update), so
the median is an index and the MAD a k-th smallest of two sorted runs (`sorted_mad`, O(log n)).
Both are refreshed every window/20 fills rather than at every fill: over a window of hundreds of
fills they barely move. A new fill's robust z-score is (x − median) / (1.4826 · MAD) of the
window before it; NaN = undefined (warm-up, no spread).

The checkpoint form of a window is `detectors.SlippageHistory` (plain data): `load` and `save`.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from numba import njit

from collector.alerts.detectors import MAD_TO_SIGMA, SlippageHistory
from collector.engine.layout import (
    E_HAS_SLIP,
    E_ID,
    E_KIND,
    E_SLIP,
    E_TS,
    P_BOOK,
    S_FEES,
    S_PEAK,
    S_REALIZED,
    S_UNREALIZED,
    T_HAS,
)

I_COUNT, I_HEAD, I_STALE, I_WINDOW, I_MIN, I_REFRESH = range(6)  # si columns (per slot)
SI_WIDTH = 6
F_MEDIAN, F_SCALE, F_LAST_Z = range(3)  # sf columns
SF_WIDTH = 3


@njit(cache=True)
def sorted_median(ordered: np.ndarray, n: int) -> float:
    """The median of the n sorted values (as `statistics.median`: the mean of the middle two for an even n)."""
    middle = n // 2
    if n % 2:
        return float(ordered[middle])
    return float((ordered[middle - 1] + ordered[middle]) / 2)


@njit(cache=True)
def sorted_mad(ordered: np.ndarray, n: int, median: float) -> float:
    """median(|x − median|) of the n sorted values in O(log n), equal to `statistics.median` of the distances.

    The distances below the split (m − x, read leftwards) and above it (x − m, read rightwards)
    are two ascending runs; the middle one(s) of their union are k-th smallest selections.
    """
    split = int(np.searchsorted(ordered[:n], median))
    middle = n // 2
    if n % 2:
        return _kth_distance(ordered, n, median, split, middle)
    return (_kth_distance(ordered, n, median, split, middle - 1) + _kth_distance(ordered, n, median, split, middle)) / 2


@njit(cache=True)
def _kth_distance(ordered: np.ndarray, n: int, median: float, split: int, k: int) -> float:
    """The k-th smallest (0-based) |x − median|: binary search on how many come from below the split."""
    below, above = split, n - split  # run lengths: a[t] = m − x[split−1−t], b[t] = x[split+t] − m
    lo, hi = max(0, k + 1 - above), min(k + 1, below)
    while True:
        i = (lo + hi) // 2  # taken from below; j = k + 1 − i from above
        j = k + 1 - i
        if i < below and j > 0 and ordered[split + j - 1] - median > median - ordered[split - 1 - i]:
            lo = i + 1
        elif i > 0 and j < above and median - ordered[split - i] > ordered[split + j] - median:
            hi = i - 1
        else:
            break
    a = median - ordered[split - i] if i > 0 else -np.inf
    b = ordered[split + j - 1] - median if j > 0 else -np.inf
    return float(max(a, b))


@njit(cache=True)
def add(ring: np.ndarray, ordered: np.ndarray, si: np.ndarray, sf: np.ndarray, s: int, x: float) -> float:
    """Fold slippage x into slot s; its z-score against the window before it (NaN: undefined)."""
    n, window = si[s, I_COUNT], si[s, I_WINDOW]
    row = ordered[s]
    z = np.nan
    if n >= si[s, I_MIN]:
        stale = si[s, I_STALE]
        if stale == 0 or stale >= si[s, I_REFRESH]:
            median = sorted_median(row, n)
            sf[s, F_MEDIAN] = median
            sf[s, F_SCALE] = MAD_TO_SIGMA * sorted_mad(row, n, median)
            stale = 0
        si[s, I_STALE] = stale + 1
        if sf[s, F_SCALE] > 0:
            z = (x - sf[s, F_MEDIAN]) / sf[s, F_SCALE]
    sf[s, F_LAST_Z] = z
    at = np.searchsorted(row[:n], x, side="right")  # after equal values, as bisect.insort
    for t in range(n, at, -1):
        row[t] = row[t - 1]
    row[at] = x
    head = si[s, I_HEAD]
    if n < window:
        ring[s, (head + n) % window] = x
        si[s, I_COUNT] = n + 1
        return z
    oldest = ring[s, head]  # the window is full: the oldest leaves
    ring[s, head] = x
    si[s, I_HEAD] = (head + 1) % window
    gone = np.searchsorted(row[: n + 1], oldest)
    for t in range(gone, n):
        row[t] = row[t + 1]
    return z


# the engine's columns scan reads, passed in (numba's cache tracks this file only, not layout.py)
COLUMNS = np.array(
    [E_KIND, E_ID, E_TS, E_HAS_SLIP, E_SLIP, P_BOOK, T_HAS, S_PEAK, S_REALIZED, S_UNREALIZED, S_FEES], np.int64
)


@njit(cache=True)
def scan(
    columns: np.ndarray,
    ei: np.ndarray,
    ef: np.ndarray,
    ti: np.ndarray,
    pi: np.ndarray,
    sf: np.ndarray,
    clock: int,
    seen: np.ndarray,
    book_slots: np.ndarray,
    windows: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    book_drawdowns: np.ndarray,
    drawdowns: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
           np.ndarray, np.ndarray]:  # fmt: skip
    """One batch in one pass (ei, ef, ti: the engine's batch arrays; pi, sf: its positions and series).

    Returns (books, their rows, their last fill times, each event's book (-1: a mark), the engine
    clock at each event, round-trip events, slippage steps as (event, slot, |z|; NaN: undefined),
    drawdown steps as (slot, drawdown % of peak NAV; NaN: undefined)).
    Books are in the order of their first fill; books = -1 when one of them has no slots row yet
    (book_slots[row, 0] = 1 once the evaluator built it): nothing is folded in then.
    Slippage steps are every observation of a window whose watch is active or whose |z| crosses
    its threshold in this batch, in event order (a watch that becomes active steps at each
    observation after). Drawdown steps: the fast-path drawdown watches of the batch's books
    (book_drawdowns: per book row, -1 padded) that are active or whose drawdown crosses.
    `seen` and the hot/touched scratch arrays are -1/0 again on return.
    """
    e_kind, e_id, e_ts, e_has_slip, e_slip, p_book, t_has, s_peak, s_realized, s_unrealized, s_fees = columns
    ring, ordered, si, wf, threshold, active, hot = windows
    n = ei.shape[0]
    rows = np.empty(n, np.int64)
    last = np.empty(n, np.int64)
    book_at = np.full(n, -1, np.int64)
    nb = 0
    unknown = False
    for i in range(n):
        if ei[i, e_kind] != 0:
            continue
        r = pi[ei[i, e_id], p_book]
        b = seen[r]
        if b < 0:
            b = nb
            seen[r] = b
            rows[nb], last[nb] = r, ei[i, e_ts]
            nb += 1
            unknown = unknown or book_slots[r, 0] == 0
        elif ei[i, e_ts] > last[b]:
            last[b] = ei[i, e_ts]
        book_at[i] = b
    for b in range(nb):
        seen[rows[b]] = -1
    nows = np.empty(n, np.int64)
    now = clock
    for i in range(n):
        now = max(now, ei[i, e_ts])
        nows[i] = now
    trips = np.flatnonzero(ti[:, t_has])
    width = book_slots.shape[1] - 1
    events = np.empty(n * width, np.int64)
    slots = np.empty(n * width, np.int64)
    values = np.empty(n * width)
    m = 0
    if unknown:
        return -1, rows[:nb], last[:nb], book_at, nows, trips, events[:0], slots[:0], values[:0], slots[:0], values[:0]
    if width:
        z = np.full((n, width), np.nan)
        for i in range(n):
            if book_at[i] >= 0 and ei[i, e_has_slip]:
                r = rows[book_at[i]]
                for k in range(width):
                    slot = book_slots[r, 1 + k]
                    if slot >= 0:
                        value = abs(add(ring, ordered, si, wf, slot, ef[i, e_slip]))
                        z[i, k] = value
                        if active[slot] or value > threshold[slot]:
                            hot[slot] = 1
        for i in range(n):
            if book_at[i] >= 0 and ei[i, e_has_slip]:
                r = rows[book_at[i]]
                for k in range(width):
                    slot = book_slots[r, 1 + k]
                    if slot >= 0 and hot[slot]:
                        events[m], slots[m], values[m] = i, slot, z[i, k]
                        m += 1
        for j in range(m):
            hot[slots[j]] = 0
    series, capital, dd_threshold, dd_active, touched = drawdowns
    dd_slots = np.empty(nb * book_drawdowns.shape[1], np.int64)
    dd_values = np.empty(nb * book_drawdowns.shape[1])
    nd = nt = 0
    for b in range(nb):
        for k in range(book_drawdowns.shape[1]):
            d = book_drawdowns[rows[b], k]
            if d < 0 or touched[d]:
                continue
            touched[d] = 1
            dd_slots[nt] = d  # touched, in order (reset below)
            nt += 1
    for j in range(nt):
        d = dd_slots[j]
        touched[d] = 0
        r = series[d]
        peak = sf[r, s_peak]
        drawdown = peak - (sf[r, s_realized] + sf[r, s_unrealized] - sf[r, s_fees])  # metrics.drawdown_pct
        top = capital[d] + peak
        value = drawdown / top if capital[d] > 0 and top > 0 else np.nan
        if dd_active[d] or value > dd_threshold[d]:
            dd_slots[nd], dd_values[nd] = d, value
            nd += 1
    return (
        nb,
        rows[:nb],
        last[:nb],
        book_at,
        nows,
        trips,
        events[:m],
        slots[:m],
        values[:m],
        dd_slots[:nd],
        dd_values[:nd],
    )


class SlippageWindows:
    """Slots of slippage windows: ring buffers, sorted copies and per-slot state, grown by doubling.

    Per slot also the watch's threshold on |z| and whether it is active (firing or pending).
    """

    def __init__(self, width: int) -> None:
        self.width = max(width, 1)  # the longest window
        self.count = 0
        self.ring = np.zeros((0, self.width))
        self.ordered = np.zeros((0, self.width + 1))  # + 1: a new value goes in before the oldest leaves
        self.si = np.zeros((0, SI_WIDTH), np.int64)
        self.sf = np.zeros((0, SF_WIDTH))
        self.threshold = np.zeros(0)
        self.active = np.zeros(0, np.bool_)
        self.hot = np.zeros(0, np.int64)  # scratch of `scan`

    def load(self, history: SlippageHistory, threshold: float, active: bool) -> int:
        """A new slot holding `history` (its window must fit `width`)."""
        s = self.count
        if s == len(self.si):
            grow = max(8, 2 * s)
            self.ring = np.resize(self.ring, (grow, self.width))
            self.ordered = np.resize(self.ordered, (grow, self.width + 1))
            self.si = np.resize(self.si, (grow, SI_WIDTH))
            self.sf = np.resize(self.sf, (grow, SF_WIDTH))
            self.threshold = np.resize(self.threshold, grow)
            self.active = np.resize(self.active, grow)
            self.hot = np.zeros(grow, np.int64)
        self.count += 1
        n = len(history.values)
        self.ring[s, :n] = list(history.values)
        self.ordered[s, :n] = history.ordered
        self.si[s] = (n, 0, history.stale, history.window, history.min_samples, max(1, history.window // 20))
        last_z = np.nan if history.last_z is None else history.last_z
        self.sf[s] = (history.median, history.scale, last_z)
        self.threshold[s], self.active[s] = threshold, active
        return s

    def save(self, s: int, history: SlippageHistory) -> None:
        """Slot s's state into its checkpoint form."""
        n, head, stale = (int(v) for v in self.si[s, [I_COUNT, I_HEAD, I_STALE]])
        window = int(self.si[s, I_WINDOW])
        history.values = deque(self.ring[s, (head + np.arange(n)) % window].tolist())
        history.ordered = self.ordered[s, :n].tolist()
        history.stale = stale
        median, scale, last_z = self.sf[s].tolist()
        history.median, history.scale = median, scale
        history.last_z = None if np.isnan(last_z) else last_z

    def add(self, s: int, x: float) -> float | None:
        """Fold x into slot s alone: its z-score (None: undefined)."""
        z = float(add(self.ring, self.ordered, self.si, self.sf, s, x))
        return None if np.isnan(z) else z
