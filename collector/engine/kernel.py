"""The engine's compiled hot path (numba): a batch of fills and marks over the columnar state.

The operations and their floating-point order are those of the reference engine
(tests/engine/reference_engine.py), so results are bit for bit the same:

* FIFO (per position, lots in a pool with a free list): a fill on the other side closes lots
  oldest first, `realized += (price − lot price) · take · multiplier · direction`; a lot with at
  most QTY_TOL of its original size left is closed whole; the rest opens a lot.
* Per fill, each of the four chain series (book, strategy, account, portfolio) adds the fill's
  realized PnL, fee, notional, slippage and round trip, and moves its holding in the symbol by
  the position's change (an aggregate's holding is exactly flat once all its books are flat).
* A mark (the fill price unless the symbol has a marks stream) revalues the symbol's holders
  (its holdings with q ≠ 0, a contiguous run of the holder heap in `g`): a holder's value is
  q × the previous mark before (layout.py), so its change is q × mark − q × previous mark, the
  reference's value − old value exactly, read from the heap slot alone; each revalued series'
  equity = realized − fees + unrealized is observed: peak, max drawdown, max drawdown % of peak
  NAV = (peak − equity) / (capital base + peak), and the daily-change moments (engine/daily.py).

Layout of the arrays: collector/engine/layout.py. Only this module imports numba, and only the
engine imports it, on its first event: commands that do not book anything do not pay for it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from collector.engine import layout
from collector.engine.layout import (
    E_FEE,
    E_HAS_SLIP,
    E_ID,
    E_KIND,
    E_MULT,
    E_PRICE,
    E_QTY,
    E_SIGN,
    E_SLIP,
    E_TS,
    G_CALENDAR,
    G_CLOCK,
    G_FREE,
    G_NDIRTY,
    G_NFREE,
    G_NTOUCHED,
    G_REVALUE,
    G_WIDTH,
    H_ALIVE,
    H_BOOKS,
    H_C,
    H_NEXT,
    H_PREV,
    H_Q,
    H_SERIES,
    H_SLOT,
    H_SYMBOL,
    H_V,
    HEAP_WIDTH,
    L_MULT,
    L_ORIGINAL,
    L_PRICE,
    L_QTY,
    P_C,
    P_CYCLE_FEES,
    P_DIRECTION,
    P_ENTRY_NOTIONAL,
    P_ENTRY_QTY,
    P_ENTRY_TS,
    P_EXIT_NOTIONAL,
    P_EXIT_QTY,
    P_GROSS,
    P_H0,
    P_HEAD,
    P_LOTS,
    P_Q,
    P_SYMBOL,
    P_TAIL,
    S_CAPITAL,
    S_CASH,
    S_DAY,
    S_DOWN_SQ,
    S_FEES,
    S_FILLS,
    S_GROSS_LOSSES,
    S_GROSS_WINS,
    S_HEAD,
    S_HOLDINGS,
    S_LAST,
    S_LOSS_STREAK,
    S_LOSSES,
    S_M2,
    S_MAX_DD,
    S_MAX_DD_PCT,
    S_MEAN,
    S_N,
    S_NET_SUM,
    S_PEAK,
    S_PREV_CLOSE,
    S_REALIZED,
    S_SLIP_NOTIONAL,
    S_SLIP_WEIGHTED,
    S_TAIL,
    S_TOUCH_LIST,
    S_TOUCHED,
    S_TRADES,
    S_UNREALIZED,
    S_VOLUME,
    S_WINS,
    T_DIRECTION,
    T_ENTRY_PRICE,
    T_ENTRY_TS,
    T_EXIT_PRICE,
    T_FEES,
    T_GROSS,
    T_HAS,
    T_NET,
    T_QTY,
    T_REALIZED,
    Y_COUNT,
    Y_DIRTY,
    Y_DIRTY_LIST,
    Y_HAS_MARK,
    Y_MARK,
    Y_START,
    Y_STREAMED,
)
from collector.engine.positions import PNL_TOL, QTY_TOL

# numba's cache is keyed on this file only, and compiles the column numbers in as constants: a layout
# change must change this file too, or a stale compiled kernel would read the wrong columns.
LAYOUT = "cb13171b281c9beb"
if layout.digest() != LAYOUT:
    raise ImportError(f"collector/engine/layout.py changed (digest {layout.digest()}): update kernel.LAYOUT")

DAY_NS = 86_400 * 1_000_000_000
# A symbol's holders are revalued this many at a time: first their holdings and series rows are read
# and updated (a short loop whose cache misses overlap), then their equity observed from cache.
CHUNK = 64
ZERO_Q = 1e-12  # aggregate quantities this close to zero are flat (float sums of offsetting books)


@njit(cache=True)
def period_day(ts: int, calendar: int) -> int:
    """UTC day number of ts; trading basis: Saturday and Sunday → the next Monday (engine/daily.py)."""
    day = ts // DAY_NS
    if not calendar:
        weekday = (day + 3) % 7
        if weekday >= 5:
            day += 7 - weekday
    return day


@njit(cache=True)
def _weekdays_before(day: int) -> int:
    weeks = (day + 3) // 7
    rest = (day + 3) % 7
    return weeks * 5 + min(rest, 5)


@njit(cache=True)
def _periods_between(first: int, last: int, calendar: int) -> int:
    if last <= first + 1:
        return 0
    if calendar:
        return last - first - 1
    return _weekdays_before(last) - _weekdays_before(first + 1)


@njit(cache=True, inline="always")
def _observe(sf: np.ndarray, si: np.ndarray, s: int, equity: float, day: int, calendar: int) -> None:
    """Equity of series s at an event of period day `day`: peak, drawdowns, daily moments.

    Branch-free selects (a new peak or drawdown is a coin toss per holder: branches would mispredict), the
    reference's values: when equity > peak only the peak moves; else drawdown = peak − equity raises the
    max drawdown if larger, and with capital > 0, drawdown / (capital + peak) the max drawdown %. The
    peak starts at 0 and only rises, so capital + peak > 0 whenever the share counts.
    """
    peak = sf[s, S_PEAK]
    down = not equity > peak
    drawdown = peak - equity
    capital = sf[s, S_CAPITAL]
    base = capital + peak
    share = drawdown / base if base != 0.0 else 0.0
    max_dd, max_pct = sf[s, S_MAX_DD], sf[s, S_MAX_DD_PCT]
    sf[s, S_PEAK] = peak if down else equity
    sf[s, S_MAX_DD] = drawdown if down & (drawdown > max_dd) else max_dd
    sf[s, S_MAX_DD_PCT] = share if down & (capital > 0) & (share > max_pct) else max_pct
    open_day = int(sf[s, S_DAY])
    if day > open_day:
        if open_day < 0:
            si[s, S_N] = 0
            sf[s, S_MEAN] = sf[s, S_M2] = sf[s, S_DOWN_SQ] = 0.0
        else:  # close the open day: its change, then the quiet days between as zeros (Welford, Chan et al.)
            x = sf[s, S_LAST] - sf[s, S_PREV_CLOSE]
            n = si[s, S_N] + 1
            si[s, S_N] = n
            delta = x - sf[s, S_MEAN]
            sf[s, S_MEAN] += delta / n
            sf[s, S_M2] += delta * (x - sf[s, S_MEAN])
            if x < 0:
                sf[s, S_DOWN_SQ] += x * x
            k = _periods_between(open_day, day, calendar)
            if k > 0:
                n = si[s, S_N]
                total = n + k
                delta = -sf[s, S_MEAN]
                sf[s, S_M2] += delta * delta * n * k / total
                sf[s, S_MEAN] += delta * k / total
                si[s, S_N] = total
            sf[s, S_PREV_CLOSE] = sf[s, S_LAST]
        sf[s, S_DAY] = day
    sf[s, S_LAST] = equity


@njit(cache=True, inline="always")
def _revalue(sf: np.ndarray, hf: np.ndarray, h: int, s: int, mark: float) -> float:
    """Revalue holding h of series s at `mark` (its value, the series' unrealized); the series' equity."""
    old = hf[h, H_V]
    value = hf[h, H_Q] * mark
    hf[h, H_V] = value
    unrealized = sf[s, S_UNREALIZED] + (value - old)
    sf[s, S_UNREALIZED] = unrealized
    return float(sf[s, S_CASH] + unrealized)


@njit(cache=True, inline="always")
def _revalue_holder(sf: np.ndarray, s: int, q: float, mark: float, previous: float) -> float:
    """_revalue of a holder whose q did not change since the mark `previous`: its value was q × previous."""
    unrealized = sf[s, S_UNREALIZED] + (q * mark - q * previous)
    sf[s, S_UNREALIZED] = unrealized
    return float(sf[s, S_CASH] + unrealized)


@njit(cache=True)
def _settle(hf: np.ndarray, hi: np.ndarray, yf: np.ndarray, h: int) -> None:
    """Store holder h's value (q × its symbol's mark) in H_V, before its q changes (a holder keeps none)."""
    if hi[h, H_SLOT] >= 0:
        hf[h, H_V] = hf[h, H_Q] * yf[hi[h, H_SYMBOL], Y_MARK]


@njit(cache=True)
def _evaluate(sf: np.ndarray, si: np.ndarray, hf: np.ndarray, h: int, s: int, mark: float, day: int, cal: int) -> None:
    """Revalue holding h of series s at `mark` and observe the series' equity."""
    _observe(sf, si, s, _revalue(sf, hf, h, s, mark), day, cal)


@njit(cache=True)
def _evaluate_run(
    g: np.ndarray,
    sf: np.ndarray,
    si: np.ndarray,
    hf: np.ndarray,
    y_start: int,
    count: int,
    mark: float,
    previous: float,
    chain: np.ndarray,
    day: int,
    cal: int,
) -> None:
    """_evaluate every holder of a heap run, CHUNK at a time (each holder is another series: any order is the same).

    The holdings in `chain` (slots, -1 = none) changed q in this event: their old value is the one _settle stored.
    """
    gq = g.view(np.float64)
    equity = np.empty(CHUNK, np.float64)
    a, b, c, d = chain[0], chain[1], chain[2], chain[3]
    for chunk in range(y_start, y_start + count, CHUNK):
        stop = min(chunk + CHUNK, y_start + count)
        for slot in range(chunk, stop):
            i = G_WIDTH + HEAP_WIDTH * slot
            if slot == a or slot == b or slot == c or slot == d:  # noqa: SIM109 (scalar compares, no tuple)
                equity[slot - chunk] = _revalue(sf, hf, g[i], g[i + 1], mark)
            else:
                equity[slot - chunk] = _revalue_holder(sf, g[i + 1], gq[i + 2], mark, previous)
        for slot in range(chunk, stop):
            _observe(sf, si, g[G_WIDTH + HEAP_WIDTH * slot + 1], equity[slot - chunk], day, cal)


@njit(cache=True)
def _touch(g: np.ndarray, si: np.ndarray, s: int) -> None:
    if si[s, S_TOUCHED] == 0:
        si[s, S_TOUCHED] = 1
        si[g[G_NTOUCHED], S_TOUCH_LIST] = s
        g[G_NTOUCHED] += 1


@njit(cache=True)
def _hold(g: np.ndarray, hf: np.ndarray, hi: np.ndarray, yi: np.ndarray, h: int, y: int) -> None:
    """Make holding h a holder of symbol y (the next slot of y's heap run, unless it is one); its slot's q = H_Q."""
    slot = hi[h, H_SLOT]
    if slot < 0:
        slot = yi[y, Y_START] + yi[y, Y_COUNT]
        yi[y, Y_COUNT] += 1
        hi[h, H_SLOT] = slot
        g[G_WIDTH + HEAP_WIDTH * slot] = h
        g[G_WIDTH + HEAP_WIDTH * slot + 1] = hi[h, H_SERIES]
    g.view(np.float64)[G_WIDTH + HEAP_WIDTH * slot + 2] = hf[h, H_Q]


@njit(cache=True)
def _unhold(g: np.ndarray, hi: np.ndarray, yi: np.ndarray, h: int, y: int) -> None:
    """Holding h is no holder of symbol y any more: the run's last holder takes its slot."""
    slot = hi[h, H_SLOT]
    if slot >= 0:
        hi[h, H_SLOT] = -1
        last = yi[y, Y_START] + yi[y, Y_COUNT] - 1
        yi[y, Y_COUNT] -= 1
        if slot != last:
            at, src = G_WIDTH + HEAP_WIDTH * slot, G_WIDTH + HEAP_WIDTH * last
            for j in range(HEAP_WIDTH):
                g[at + j] = g[src + j]
            hi[g[at], H_SLOT] = slot


@njit(cache=True)
def _revive(hf: np.ndarray, hi: np.ndarray, si: np.ndarray, h: int, s: int) -> None:
    """A fresh zero holding at the end of series s's holdings (a dict insertion)."""
    hi[h, H_ALIVE] = 1
    hf[h, H_Q] = hf[h, H_C] = hf[h, H_V] = 0.0
    hi[h, H_BOOKS] = 0
    tail = si[s, S_TAIL]
    hi[h, H_PREV] = tail
    hi[h, H_NEXT] = -1
    if tail >= 0:
        hi[tail, H_NEXT] = h
    else:
        si[s, S_HEAD] = h
    si[s, S_TAIL] = h
    si[s, S_HOLDINGS] += 1


@njit(cache=True)
def _drop(hi: np.ndarray, si: np.ndarray, h: int, s: int) -> None:
    """Remove holding h from series s's holdings (a dict deletion)."""
    hi[h, H_ALIVE] = 0
    before, after = hi[h, H_PREV], hi[h, H_NEXT]
    if before >= 0:
        hi[before, H_NEXT] = after
    else:
        si[s, S_HEAD] = after
    if after >= 0:
        hi[after, H_PREV] = before
    else:
        si[s, S_TAIL] = before
    si[s, S_HOLDINGS] -= 1


@njit(cache=True)
def _record_trip(sf: np.ndarray, si: np.ndarray, s: int, net: float) -> None:
    si[s, S_TRADES] += 1
    sf[s, S_NET_SUM] += net
    if net > 0:
        si[s, S_WINS] += 1
        sf[s, S_GROSS_WINS] += net
        si[s, S_LOSS_STREAK] = 0
    elif net < 0:
        si[s, S_LOSSES] += 1
        sf[s, S_GROSS_LOSSES] += net
        si[s, S_LOSS_STREAK] += 1
    else:
        si[s, S_LOSS_STREAK] = 0


@njit(cache=True)
def _set_mark(
    g: np.ndarray,
    sf: np.ndarray,
    si: np.ndarray,
    hf: np.ndarray,
    hi: np.ndarray,
    pi: np.ndarray,
    yf: np.ndarray,
    yi: np.ndarray,
    y: int,
    mark: float,
    ts: int,
    p: int,
    first: int,
    flat: np.ndarray,
    nflat: int,
    chain: np.ndarray,
) -> None:
    """Revalue symbol y's holders (only p's chain from level `first` when the mark is unchanged), then `flat`.

    `chain`: scratch for the slots of p's chain holdings (their q changed in this event).
    """
    cal = g[G_CALENDAR]
    day = period_day(ts, cal)
    if yi[y, Y_HAS_MARK] == 1 and mark == yf[y, Y_MARK]:
        if p >= 0:
            for k in range(first, 4):
                h = pi[p, P_H0 + k]
                if hi[h, H_SLOT] >= 0:
                    _evaluate(sf, si, hf, h, hi[h, H_SERIES], mark, day, cal)
    else:
        previous = yf[y, Y_MARK]
        chain[:] = -1
        if p >= 0:
            for k in range(first, 4):
                chain[k] = hi[pi[p, P_H0 + k], H_SLOT]
        yf[y, Y_MARK] = mark
        yi[y, Y_HAS_MARK] = 1
        if yi[y, Y_DIRTY] == 0:
            yi[y, Y_DIRTY] = 1
            yi[g[G_NDIRTY], Y_DIRTY_LIST] = y
            g[G_NDIRTY] += 1
        _evaluate_run(g, sf, si, hf, yi[y, Y_START], yi[y, Y_COUNT], mark, previous, chain, day, cal)
    for i in range(nflat):
        h = flat[i]
        _evaluate(sf, si, hf, h, hi[h, H_SERIES], mark, day, cal)


@njit(cache=True)
def _close_lots(
    g: np.ndarray, pf: np.ndarray, pi: np.ndarray, lf: np.ndarray, ln: np.ndarray, p: int, qty: float, price: float
) -> tuple[float, float, float]:
    """Close up to qty FIFO: (quantity left over, realized PnL, quantity closed) (positions.py rules)."""
    direction = pi[p, P_DIRECTION]
    remaining, realized, closed = qty, 0.0, 0.0
    while pi[p, P_LOTS] > 0 and remaining > 0:
        lot = pi[p, P_HEAD]
        lot_qty, lot_price, mult, original = lf[lot, L_QTY], lf[lot, L_PRICE], lf[lot, L_MULT], lf[lot, L_ORIGINAL]
        take = remaining
        if lot_qty <= remaining * (1 + QTY_TOL) or lot_qty - remaining <= original * QTY_TOL:
            take = lot_qty
        realized += (price - lot_price) * take * mult * direction
        pf[p, P_Q] -= direction * take * mult
        pf[p, P_C] -= direction * take * lot_price * mult
        remaining -= take
        closed += take
        if take == lot_qty:  # pop the head lot onto the free list
            nxt = ln[lot]
            pi[p, P_HEAD] = nxt
            if nxt < 0:
                pi[p, P_TAIL] = -1
            pi[p, P_LOTS] -= 1
            ln[lot] = g[G_FREE]
            g[G_FREE] = lot
            g[G_NFREE] += 1
        else:
            lf[lot, L_QTY] = lot_qty - take
    closed = min(closed, qty)
    if remaining <= qty * QTY_TOL:
        remaining = 0.0
    if pi[p, P_LOTS] == 0:
        pf[p, P_Q] = pf[p, P_C] = 0.0
    return remaining, realized, closed


@njit(cache=True)
def _fill(
    g: np.ndarray,
    sf: np.ndarray,
    si: np.ndarray,
    hf: np.ndarray,
    hi: np.ndarray,
    pf: np.ndarray,
    pi: np.ndarray,
    lf: np.ndarray,
    ln: np.ndarray,
    yf: np.ndarray,
    yi: np.ndarray,
    ei: np.ndarray,
    ef: np.ndarray,
    tf: np.ndarray,
    ti: np.ndarray,
    e: int,
    flat: np.ndarray,
    flat_book: np.ndarray,
    chain: np.ndarray,
) -> None:
    p, ts, sign = ei[e, E_ID], ei[e, E_TS], ei[e, E_SIGN]
    qty, price, fee, mult = ef[e, E_QTY], ef[e, E_PRICE], ef[e, E_FEE], ef[e, E_MULT]
    old_q, old_c, was_open = pf[p, P_Q], pf[p, P_C], 1 if pi[p, P_LOTS] > 0 else 0
    realized = 0.0
    remaining = qty
    trip = False
    net = 0.0
    if pi[p, P_DIRECTION] == -sign:
        remaining, realized, closed = _close_lots(g, pf, pi, lf, ln, p, qty, price)
        pf[p, P_EXIT_QTY] += closed
        pf[p, P_EXIT_NOTIONAL] += closed * price
        pf[p, P_GROSS] += realized
        pf[p, P_CYCLE_FEES] += fee * closed / qty
        if pi[p, P_LOTS] == 0:  # flat: the round trip is complete
            trip = True
            ti[e, T_HAS] = 1
            ti[e, T_DIRECTION] = pi[p, P_DIRECTION]
            ti[e, T_ENTRY_TS] = pi[p, P_ENTRY_TS]
            pi[p, P_DIRECTION] = 0
            net = pf[p, P_GROSS] - pf[p, P_CYCLE_FEES]
            if abs(net) <= PNL_TOL * (pf[p, P_ENTRY_NOTIONAL] + pf[p, P_EXIT_NOTIONAL]) * mult:
                net = 0.0
            tf[e, T_ENTRY_PRICE] = pf[p, P_ENTRY_NOTIONAL] / pf[p, P_ENTRY_QTY]
            tf[e, T_EXIT_PRICE] = pf[p, P_EXIT_NOTIONAL] / pf[p, P_EXIT_QTY]
            tf[e, T_QTY] = pf[p, P_ENTRY_QTY]
            tf[e, T_GROSS] = pf[p, P_GROSS]
            tf[e, T_FEES] = pf[p, P_CYCLE_FEES]
            tf[e, T_NET] = net
    if remaining > 0:
        if pi[p, P_DIRECTION] == 0:  # a new cycle
            pi[p, P_DIRECTION] = sign
            pi[p, P_ENTRY_TS] = ts
            for column in range(P_ENTRY_QTY, P_CYCLE_FEES + 1):
                pf[p, column] = 0.0
        lot = g[G_FREE]
        g[G_FREE] = ln[lot]
        g[G_NFREE] -= 1
        lf[lot, L_QTY] = remaining
        lf[lot, L_PRICE] = price
        lf[lot, L_MULT] = mult
        lf[lot, L_ORIGINAL] = remaining
        ln[lot] = -1
        tail = pi[p, P_TAIL]
        if tail >= 0:
            ln[tail] = lot
        else:
            pi[p, P_HEAD] = lot
        pi[p, P_TAIL] = lot
        pi[p, P_LOTS] += 1
        pf[p, P_Q] += sign * remaining * mult
        pf[p, P_C] += sign * remaining * price * mult
        pf[p, P_ENTRY_QTY] += remaining
        pf[p, P_ENTRY_NOTIONAL] += remaining * price
        pf[p, P_CYCLE_FEES] += fee * remaining / qty
    tf[e, T_REALIZED] = realized
    if g[G_REVALUE] == 0:
        return
    dq, dc = pf[p, P_Q] - old_q, pf[p, P_C] - old_c
    opened = (1 if pi[p, P_LOTS] > 0 else 0) - was_open
    has_slip = ei[e, E_HAS_SLIP] == 1
    _apply_chain(
        g,
        sf,
        si,
        hf,
        hi,
        pf,
        pi,
        yf,
        yi,
        p,
        0,
        ts,
        price,
        qty * price * mult,
        realized,
        fee,
        has_slip,
        ef[e, E_SLIP],
        trip,
        net,
        dq,
        dc,
        opened,
        flat,
        flat_book,
        chain,
    )


@njit(cache=True)
def _apply_chain(
    g: np.ndarray,
    sf: np.ndarray,
    si: np.ndarray,
    hf: np.ndarray,
    hi: np.ndarray,
    pf: np.ndarray,
    pi: np.ndarray,
    yf: np.ndarray,
    yi: np.ndarray,
    p: int,
    first: int,
    ts: int,
    price: float,
    notional: float,
    realized: float,
    fee: float,
    has_slip: bool,
    slip: float,
    trip: bool,
    net: float,
    dq: float,
    dc: float,
    opened: int,
    flat: np.ndarray,
    flat_book: np.ndarray,
    chain: np.ndarray,
) -> None:
    """Book a fill's effect on position p's chain from level `first` on (0 = book … 3 = portfolio), then mark.

    The engine passes first = 0 after the FIFO; an aggregator of partitioned books passes 1 with the
    book's (realized, fee, dq, dc, opened, trip) from the worker's record: the same operations in the
    same order, so the aggregates are bit for bit those of one engine.
    """
    y = pi[p, P_SYMBOL]
    nflat = 0
    for k in range(first, 4):
        h = pi[p, P_H0 + k]
        s = hi[h, H_SERIES]
        sf[s, S_REALIZED] += realized
        sf[s, S_FEES] += fee
        sf[s, S_CASH] = sf[s, S_REALIZED] - sf[s, S_FEES]
        si[s, S_FILLS] += 1
        sf[s, S_VOLUME] += notional
        if has_slip:
            sf[s, S_SLIP_WEIGHTED] += slip * notional
            sf[s, S_SLIP_NOTIONAL] += notional
        if trip:
            _record_trip(sf, si, s, net)
        if hi[h, H_ALIVE] == 0:
            _revive(hf, hi, si, h, s)
        _settle(hf, hi, yf, h)
        cost_change = dc
        if k == 0:  # the book's holding is its position, exactly (a flat book is exactly flat)
            hf[h, H_Q] = pf[p, P_Q]
            hf[h, H_C] = pf[p, P_C]
        else:
            hf[h, H_Q] += dq
            hf[h, H_C] += dc
            hi[h, H_BOOKS] += opened
            if hi[h, H_BOOKS] == 0:  # all its books flat: exactly flat, the float residue dropped
                cost_change -= hf[h, H_C]
                hf[h, H_Q] = hf[h, H_C] = 0.0
            elif -ZERO_Q < hf[h, H_Q] < ZERO_Q:
                hf[h, H_Q] = 0.0
        sf[s, S_UNREALIZED] -= cost_change
        if hf[h, H_Q] != 0:
            _hold(g, hf, hi, yi, h, y)
        else:
            _unhold(g, hi, yi, h, y)
            flat[nflat] = h
            flat_book[nflat] = 1 if k == 0 else 0
            nflat += 1
        _touch(g, si, s)
    mark = yf[y, Y_MARK] if yi[y, Y_STREAMED] == 1 else price
    _set_mark(g, sf, si, hf, hi, pi, yf, yi, y, mark, ts, p, first, flat, nflat, chain)
    for i in range(nflat):
        h = flat[i]
        if flat_book[i] == 1 or hi[h, H_BOOKS] == 0:
            s = hi[h, H_SERIES]
            _drop(hi, si, h, s)
            if si[s, S_HOLDINGS] == 0:
                sf[s, S_UNREALIZED] = 0.0  # no float residue once all flat


@njit(cache=True, nogil=True)  # a checkpoint being written in another thread goes on meanwhile
def run(
    g: np.ndarray,
    sf: np.ndarray,
    si: np.ndarray,
    hf: np.ndarray,
    hi: np.ndarray,
    pf: np.ndarray,
    pi: np.ndarray,
    lf: np.ndarray,
    ln: np.ndarray,
    yf: np.ndarray,
    yi: np.ndarray,
    ei: np.ndarray,
    ef: np.ndarray,
    tf: np.ndarray,
    ti: np.ndarray,
    capital: np.ndarray,
) -> None:
    """Book the events ei/ef in order; per event tf[e, T_REALIZED], and the round trip in tf/ti.

    capital: rows (event, series, capital base), in event order: a series' new capital base from that event on.
    """
    flat = np.empty(4, np.int64)
    flat_book = np.empty(4, np.int64)
    chain = np.empty(4, np.int64)
    update = 0
    for e in range(ei.shape[0]):
        while update < capital.shape[0] and capital[update, 0] <= e:
            sf[int(capital[update, 1]), S_CAPITAL] = capital[update, 2]
            update += 1
        ts = ei[e, E_TS]
        if ts > g[G_CLOCK]:
            g[G_CLOCK] = ts
        if ei[e, E_KIND] == 0:
            _fill(g, sf, si, hf, hi, pf, pi, lf, ln, yf, yi, ei, ef, tf, ti, e, flat, flat_book, chain)
        else:
            y = ei[e, E_ID]
            yi[y, Y_STREAMED] = 1
            tf[e, T_REALIZED] = 0.0
            _set_mark(g, sf, si, hf, hi, pi, yf, yi, y, ef[e, E_PRICE], ts, -1, 0, flat, 0, chain)


@njit(cache=True)
def take_changed(g: np.ndarray, si: np.ndarray, yi: np.ndarray, out: np.ndarray) -> int:
    """Series touched by fills plus the holders of symbols whose mark moved, into out; clears both."""
    n = 0
    for i in range(g[G_NTOUCHED]):
        out[n] = si[i, S_TOUCH_LIST]
        n += 1
    for j in range(g[G_NDIRTY]):
        y = yi[j, Y_DIRTY_LIST]
        yi[y, Y_DIRTY] = 0
        at = G_WIDTH + HEAP_WIDTH * yi[y, Y_START]
        for i in range(at, at + HEAP_WIDTH * yi[y, Y_COUNT], HEAP_WIDTH):
            s = g[i + 1]
            if si[s, S_TOUCHED] == 0:
                si[s, S_TOUCHED] = 1
                out[n] = s
                n += 1
    for i in range(n):
        si[out[i], S_TOUCHED] = 0
    g[G_NTOUCHED] = 0
    g[G_NDIRTY] = 0
    return n


@njit(cache=True)
def holdings_of(si: np.ndarray, hi: np.ndarray, s: int, out: np.ndarray) -> int:
    """Series s's holding ids in insertion order, into out; returns how many."""
    n = 0
    h = si[s, S_HEAD]
    while h >= 0:
        out[n] = h
        n += 1
        h = hi[h, H_NEXT]
    return n


@njit(cache=True)
def exposure(si: np.ndarray, hf: np.ndarray, hi: np.ndarray, yf: np.ndarray, s: int) -> tuple[float, float]:
    """(Σ |v|, Σ v) over series s's holdings, summed left to right in insertion order (as Python's sum)."""
    gross, net = 0.0, 0.0
    h = si[s, S_HEAD]
    while h >= 0:
        v = hf[h, H_Q] * yf[hi[h, H_SYMBOL], Y_MARK] if hi[h, H_SLOT] >= 0 else hf[h, H_V]
        gross += abs(v)
        net += v
        h = hi[h, H_NEXT]
    return gross, net


@njit(cache=True)
def observe(g: np.ndarray, sf: np.ndarray, si: np.ndarray, s: int, ts: int) -> None:
    """Observe series s's equity at ts as a zero holding's revaluation would (after a bust re-derived its book)."""
    unrealized = sf[s, S_UNREALIZED] + 0.0
    sf[s, S_UNREALIZED] = unrealized
    cal = g[G_CALENDAR]
    _observe(sf, si, s, sf[s, S_CASH] + unrealized, period_day(ts, cal), cal)


# ---- partitioned books (collector/bus): run_records' event kinds beyond run's fill (0) and mark (1) ----------
K_TICK = 2  # another partition's fill (id = symbol): its price moves the symbol as that fill's would
K_RECORD = 3  # a worker's booked fill (id = position): its effect on levels 1..3
R_NOTIONAL, R_REALIZED, R_FEE, R_SLIP, R_NET, R_DQ, R_DC = range(7)  # rf: a fill's record, floats
R_HAS_SLIP, R_TRIP, R_OPENED = range(3)  # ri: its integers
RF_WIDTH, RI_WIDTH = 7, 3


@njit(cache=True, nogil=True)
def run_records(
    g: np.ndarray,
    sf: np.ndarray,
    si: np.ndarray,
    hf: np.ndarray,
    hi: np.ndarray,
    pf: np.ndarray,
    pi: np.ndarray,
    lf: np.ndarray,
    ln: np.ndarray,
    yf: np.ndarray,
    yi: np.ndarray,
    ei: np.ndarray,
    ef: np.ndarray,
    tf: np.ndarray,
    ti: np.ndarray,
    rf: np.ndarray,
    ri: np.ndarray,
    capital: np.ndarray,
) -> None:
    """`run` for a partition's worker (fills, ticks, marks) or the aggregator (records, marks), in global order.

    A fill (kind 0) is booked as `run` books it, and its record goes out in rf/ri: notional = qty × price ×
    multiplier, realized, fee, slippage, trip net, dq/dc = the position's change in q and cost, opened = change
    in "has open lots". A tick (kind 2) is what another book's fill does to this engine's holders: the symbol
    is marked at the fill price (its streamed mark if it has a marks stream), the chain of no position here.
    A record (kind 3) is `_apply_chain(first=1)` with the worker's values: the aggregates of one engine.
    """
    flat = np.empty(4, np.int64)
    flat_book = np.empty(4, np.int64)
    chain = np.empty(4, np.int64)
    update = 0
    for e in range(ei.shape[0]):
        while update < capital.shape[0] and capital[update, 0] <= e:
            sf[int(capital[update, 1]), S_CAPITAL] = capital[update, 2]
            update += 1
        ts = ei[e, E_TS]
        if ts > g[G_CLOCK]:
            g[G_CLOCK] = ts
        kind = ei[e, E_KIND]
        if kind == 0:
            p = ei[e, E_ID]
            old_q, old_c, was_open = pf[p, P_Q], pf[p, P_C], 1 if pi[p, P_LOTS] > 0 else 0
            _fill(g, sf, si, hf, hi, pf, pi, lf, ln, yf, yi, ei, ef, tf, ti, e, flat, flat_book, chain)
            rf[e, R_NOTIONAL] = ef[e, E_QTY] * ef[e, E_PRICE] * ef[e, E_MULT]
            rf[e, R_REALIZED] = tf[e, T_REALIZED]
            rf[e, R_FEE] = ef[e, E_FEE]
            rf[e, R_SLIP] = ef[e, E_SLIP]
            rf[e, R_NET] = tf[e, T_NET] if ti[e, T_HAS] == 1 else 0.0
            rf[e, R_DQ] = pf[p, P_Q] - old_q
            rf[e, R_DC] = pf[p, P_C] - old_c
            ri[e, R_HAS_SLIP] = ei[e, E_HAS_SLIP]
            ri[e, R_TRIP] = ti[e, T_HAS]
            ri[e, R_OPENED] = (1 if pi[p, P_LOTS] > 0 else 0) - was_open
        elif kind == K_RECORD:
            p = ei[e, E_ID]
            _apply_chain(
                g,
                sf,
                si,
                hf,
                hi,
                pf,
                pi,
                yf,
                yi,
                p,
                1,
                ts,
                ef[e, E_PRICE],
                rf[e, R_NOTIONAL],
                rf[e, R_REALIZED],
                rf[e, R_FEE],
                ri[e, R_HAS_SLIP] == 1,
                rf[e, R_SLIP],
                ri[e, R_TRIP] == 1,
                rf[e, R_NET],
                rf[e, R_DQ],
                rf[e, R_DC],
                ri[e, R_OPENED],
                flat,
                flat_book,
                chain,
            )
        else:
            y = ei[e, E_ID]
            if kind == 1:
                yi[y, Y_STREAMED] = 1
                mark = ef[e, E_PRICE]
            else:
                mark = yf[y, Y_MARK] if yi[y, Y_STREAMED] == 1 else ef[e, E_PRICE]
            _set_mark(g, sf, si, hf, hi, pi, yf, yi, y, mark, ts, -1, 0, flat, 0, chain)
