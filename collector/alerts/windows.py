"""The alert rules' per-event work on a batch, compiled (numba): `scan`, and the slippage windows it updates.

`scan` takes the engine's batch arrays and returns what Python must step (evaluator.py).
The slippage windows of all slippage watches are kept in arrays, one "slot" per watch.

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
    T_NET,
)

I_COUNT, I_HEAD, I_STALE, I_WINDOW, I_MIN, I_REFRESH, I_ACTIVE, I_HOT = range(8)  # si columns (per slot)
SI_WIDTH = 8  # I_ACTIVE: the watch is firing or pending; I_HOT: scratch of `scan`
F_MEDIAN, F_SCALE, F_LAST_Z, F_THRESHOLD = range(4)  # sf columns (F_THRESHOLD: the watch's, on |z|)
SF_WIDTH = 4
# drawdown slots: ddi columns (D_ACTIVE: firing or pending; D_TOUCHED: scratch), ddf columns
D_SERIES, D_ACTIVE, D_TOUCHED = range(3)
D_CAPITAL, D_THRESHOLD = range(2)
# scan's output buffers: oi columns (each run of them one list: read back with one `tolist`),
# of columns (|z| of a slippage step, drawdown of a drawdown step, net PnL of a round trip)
O_BOOK, O_LAST, O_BOOK_AT, O_NOW, O_TRIP, O_TRIP_BOOK, O_TRIP_NOW, O_STEP, O_SLOT, O_STEP_NOW, O_DRAWDOWN = range(11)
OI_WIDTH = 11
OF_WIDTH = 3


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
    [E_KIND, E_ID, E_TS, E_HAS_SLIP, E_SLIP, P_BOOK, T_HAS, T_NET, S_PEAK, S_REALIZED, S_UNREALIZED, S_FEES], np.int64
)


@njit(cache=True)
def scan(
    columns: np.ndarray,
    ei: np.ndarray,
    ef: np.ndarray,
    ti: np.ndarray,
    tf: np.ndarray,
    pi: np.ndarray,
    sf: np.ndarray,
    clock: int,
    seen: np.ndarray,
    table: np.ndarray,
    width: int,
    ring: np.ndarray,
    ordered: np.ndarray,
    wi: np.ndarray,
    wf: np.ndarray,
    ddi: np.ndarray,
    ddf: np.ndarray,
    oi: np.ndarray,
    of: np.ndarray,
) -> tuple[int, int, int, int]:
    """One batch in one pass (ei, ef, ti, tf: the engine's batch arrays; pi, sf: its positions and series).

    table: per book row, 1 once the evaluator built it, then `width` slippage slots and the
    fast-path drawdown slots of its chain (-1: none). Writes into oi/of (rows ≥ events × slots)
    and returns their counts: (books, round trips, slippage steps, drawdown steps):
    - books in the order of their first fill (O_BOOK: row, O_LAST: latest fill time), and per
      event its book (O_BOOK_AT, -1: a mark) and the engine clock (O_NOW); books = -1 - books when
      one of them is not built yet: nothing is folded in then;
    - round trips (O_TRIP event, O_TRIP_BOOK its book, O_TRIP_NOW the clock, of[:, 2] net PnL);
    - slippage steps (O_STEP event, O_SLOT, O_STEP_NOW the clock, of[:, 0] |z|, NaN: undefined): every observation of a
      window whose watch is active or whose |z| crosses its threshold in this batch, in event order
      (a watch that becomes active steps at each observation after);
    - drawdown steps (O_DRAWDOWN slot, of[:, 1] drawdown % of peak NAV as metrics.drawdown_pct,
      NaN: undefined): the batch's books' fast-path drawdown watches that are active or cross.
    Scratch (seen, I_HOT, D_TOUCHED) is -1/0 again on return.
    """
    e_kind, e_id, e_ts, e_has_slip, e_slip, p_book, t_has, t_net, s_peak, s_realized, s_unrealized, s_fees = columns
    n = ei.shape[0]
    nb = 0
    unknown = False
    for i in range(n):
        oi[i, O_BOOK_AT] = -1
        if ei[i, e_kind] != 0:
            continue
        r = pi[ei[i, e_id], p_book]
        b = seen[r]
        if b < 0:
            b = nb
            seen[r] = b
            oi[b, O_BOOK], oi[b, O_LAST] = r, ei[i, e_ts]
            nb += 1
            unknown = unknown or table[r, 0] == 0
        elif ei[i, e_ts] > oi[b, O_LAST]:
            oi[b, O_LAST] = ei[i, e_ts]
        oi[i, O_BOOK_AT] = b
    for b in range(nb):
        seen[oi[b, O_BOOK]] = -1
    now = clock
    nt = 0
    for i in range(n):
        now = max(now, ei[i, e_ts])
        oi[i, O_NOW] = now
        if ti[i, t_has]:
            oi[nt, O_TRIP], oi[nt, O_TRIP_BOOK], oi[nt, O_TRIP_NOW], of[nt, 2] = i, oi[i, O_BOOK_AT], now, tf[i, t_net]
            nt += 1
    if unknown:
        return -1 - nb, nt, 0, 0
    m = 0
    if width:
        z = np.full((n, width), np.nan)
        for i in range(n):
            if oi[i, O_BOOK_AT] >= 0 and ei[i, e_has_slip]:
                r = oi[oi[i, O_BOOK_AT], O_BOOK]
                for k in range(width):
                    slot = table[r, 1 + k]
                    if slot >= 0:
                        value = abs(add(ring, ordered, wi, wf, slot, ef[i, e_slip]))
                        z[i, k] = value
                        if wi[slot, I_ACTIVE] or value > wf[slot, F_THRESHOLD]:
                            wi[slot, I_HOT] = 1
        for i in range(n):
            if oi[i, O_BOOK_AT] >= 0 and ei[i, e_has_slip]:
                r = oi[oi[i, O_BOOK_AT], O_BOOK]
                for k in range(width):
                    slot = table[r, 1 + k]
                    if slot >= 0 and wi[slot, I_HOT]:
                        oi[m, O_STEP], oi[m, O_SLOT], oi[m, O_STEP_NOW], of[m, 0] = i, slot, oi[i, O_NOW], z[i, k]
                        m += 1
        for j in range(m):
            wi[oi[j, O_SLOT], I_HOT] = 0
    touched = 0
    for b in range(nb):
        r = oi[b, O_BOOK]
        for k in range(1 + width, table.shape[1]):
            d = table[r, k]
            if d >= 0 and not ddi[d, D_TOUCHED]:
                ddi[d, D_TOUCHED] = 1
                oi[touched, O_DRAWDOWN] = d  # touched, in order (compacted to the steps below)
                touched += 1
    nd = 0
    for j in range(touched):
        d = oi[j, O_DRAWDOWN]
        ddi[d, D_TOUCHED] = 0
        r = ddi[d, D_SERIES]
        peak = sf[r, s_peak]
        drawdown = peak - (sf[r, s_realized] + sf[r, s_unrealized] - sf[r, s_fees])
        capital = ddf[d, D_CAPITAL]
        top = capital + peak
        value = drawdown / top if capital > 0 and top > 0 else np.nan
        if ddi[d, D_ACTIVE] or value > ddf[d, D_THRESHOLD]:
            oi[nd, O_DRAWDOWN], of[nd, 1] = d, value
            nd += 1
    return nb, nt, m, nd


class SlippageWindows:
    """Slots of slippage windows: ring buffers, sorted copies and per-slot state, grown by doubling.

    Per slot also the watch's threshold on |z| (F_THRESHOLD) and whether it is active (I_ACTIVE).
    """

    def __init__(self, width: int) -> None:
        self.width = max(width, 1)  # the longest window
        self.count = 0
        self.ring = np.zeros((0, self.width))
        self.ordered = np.zeros((0, self.width + 1))  # + 1: a new value goes in before the oldest leaves
        self.si = np.zeros((0, SI_WIDTH), np.int64)
        self.sf = np.zeros((0, SF_WIDTH))

    def load(self, history: SlippageHistory, threshold: float, active: bool) -> int:
        """A new slot holding `history` (its window must fit `width`)."""
        s = self.count
        if s == len(self.si):
            grow = max(8, 2 * s)
            self.ring = np.resize(self.ring, (grow, self.width))
            self.ordered = np.resize(self.ordered, (grow, self.width + 1))
            self.si = np.resize(self.si, (grow, SI_WIDTH))
            self.sf = np.resize(self.sf, (grow, SF_WIDTH))
        self.count += 1
        n = len(history.values)
        self.ring[s, :n] = list(history.values)
        self.ordered[s, :n] = history.ordered
        refresh = max(1, history.window // 20)
        self.si[s] = (n, 0, history.stale, history.window, history.min_samples, refresh, active, 0)
        last_z = np.nan if history.last_z is None else history.last_z
        self.sf[s] = (history.median, history.scale, last_z, threshold)
        return s

    def save(self, s: int, history: SlippageHistory) -> None:
        """Slot s's state into its checkpoint form."""
        n, head, stale = (int(v) for v in self.si[s, [I_COUNT, I_HEAD, I_STALE]])
        window = int(self.si[s, I_WINDOW])
        history.values = deque(self.ring[s, (head + np.arange(n)) % window].tolist())
        history.ordered = self.ordered[s, :n].tolist()
        history.stale = stale
        median, scale, last_z, _ = self.sf[s].tolist()
        history.median, history.scale = median, scale
        history.last_z = None if np.isnan(last_z) else last_z

    def add(self, s: int, x: float) -> float | None:
        """Fold x into slot s alone: its z-score (None: undefined)."""
        z = float(add(self.ring, self.ordered, self.si, self.sf, s, x))
        return None if np.isnan(z) else z
