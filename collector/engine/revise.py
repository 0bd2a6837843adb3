"""Busts and corrections: re-derive the affected book as if the original fill never happened.

Each book keeps its last `window` fills (`BookLog`, engine/bustlog.py: compact rows); fills
older than that are folded into a per-book base engine as they leave the log. A bust
(`action: cancel`) or correction (`action: correct`, the record carrying the corrected values)
of a fill in the log replays that book: a copy of its base plus the log without the fill (or
with the corrected one in its place, in time order; a correction may move the fill to another
book, which is replayed too).

Cost: O(window) fills replayed per bust, plus copying one book's base; memory: up to `window`
fills per book, ~120 B each (plus up to FOLD fills per book waiting to be folded into its base
in one batch). A fill older than the window, unknown, or from before a restart (the log is not
in the checkpoint) cannot be busted: the request is rejected with that reason.

What the replay gives exactly: the book's lots, positions, realized PnL, fees, fills, volume,
slippage and round-trip statistics, and their sums in the strategy/account/portfolio aggregates.
Path-dependent values are not rewritten: the book's drawdown and daily changes come from the
replay of its own fills (their prices as marks), and an aggregate's peak, drawdown, daily changes
and loss streak take the change as of now (the day the bust arrives), as a desk's P&L would.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from collector.engine import layout as L
from collector.engine.bustlog import BookKey, blank
from collector.engine.bustlog import BookLog as BookLog  # where the engine and the run import it from
from collector.engine.series import Series
from collector.model import Fill

if TYPE_CHECKING:
    from collector.engine.engine import Engine

# Running sums of a book; an aggregate's are the sums over its books, so a changed book changes them by the difference.
ADDITIVE = (
    "realized",
    "fees",
    "fills",
    "volume",
    "slip_weighted",
    "slip_notional",
    "trades",
    "wins",
    "losses",
    "gross_wins",
    "gross_losses",
    "net_sum",
)
# A book series' state that a replay replaces (identity, capital, change tracking and holdings are handled apart)
_KEPT_FLOATS = (L.S_CAPITAL,)
_KEPT_INTS = (L.S_TOUCHED, L.S_TOUCH_LIST, L.S_HEAD, L.S_TAIL, L.S_HOLDINGS)


class RevisionError(ValueError):
    """A bust/correction that cannot be applied; the message is the dead-letter reason."""


@dataclass
class Revision:
    """What a bust/correction changed: the original fill, its replacement, and the replayed fills' PnL."""

    original: Fill
    replacement: Fill | None
    replayed: list[tuple[Fill, float]] = field(default_factory=list)  # (fill, realized PnL), every rebuilt book


def revise(engine: Engine, event: Fill) -> Revision:
    """Apply a cancel/correct `event` to the engine; RevisionError when its fill is not in the log."""
    log = engine.log
    if log is None:
        raise RevisionError("busts and corrections are not enabled here")
    assert event.ref_fill_id is not None
    found = log.find(event.account, event.ref_fill_id)
    if found is None:
        raise RevisionError(
            f"ref_fill_id {event.ref_fill_id!r} of account {event.account!r} is not among the last "
            f"{log.window} fills of any book (unknown, too old, or booked before a restart)"
        )
    key, index = found
    fills = log.rings[key].fills()
    original = fills.pop(index)
    replacement = None
    revision = Revision(original, None)
    if event.action == "correct":
        replacement = copy.copy(event)
        replacement.action, replacement.ref_fill_id = "fill", None
        revision.replacement = replacement
        target = (replacement.account, replacement.strategy)
        if target == key:
            fills.insert(_position(fills, replacement.ts), replacement)
        else:
            others = log.ring(target).fills()
            others.insert(_position(others, replacement.ts), replacement)
            revision.replayed += _rebuild(engine, target, others)
    revision.replayed += _rebuild(engine, key, fills)
    return revision


def _position(fills: list[Fill], ts: int) -> int:
    """Index after the last fill at or before ts (a correction keeps its place in time)."""
    return next((i for i in range(len(fills), 0, -1) if fills[i - 1].ts <= ts), 0)


def _rebuild(engine: Engine, key: BookKey, fills: list[Fill]) -> list[tuple[Fill, float]]:
    """Replay one book from its base and `fills`, and move the aggregates above it by the difference."""
    from collector.engine.engine import kernel

    log = engine.log
    assert log is not None
    base = log.base_of(key, engine)
    scratch = base.copy() if base is not None else blank(engine)
    replayed = list(zip(fills, scratch.on_events(fills).realized, strict=True))
    log.ring(key).replace(fills)
    book = engine._book(*key)
    rebuilt = scratch.books.get(key)
    new_series = rebuilt.chain[0] if rebuilt is not None else None
    new_positions = rebuilt.positions if rebuilt is not None else {}
    live = book.chain[0]
    for aggregate in book.chain[1:]:
        for name in ADDITIVE:
            new = getattr(new_series, name) if new_series is not None else 0
            setattr(aggregate, name, getattr(aggregate, name) + new - getattr(live, name))
    for symbol in set(book.positions) | set(new_positions):
        old = _position_state(engine, book.positions.get(symbol))
        _move_holdings(engine, book.chain[1:], symbol, old, _position_state(scratch, new_positions.get(symbol)))
    _replace_series(engine, live, scratch, new_series)
    _replace_positions(engine, key, scratch, new_positions)
    k = kernel()
    for series in book.chain:
        k._touch(engine.g, engine.si, series.index)
    anchor = fills[-1].symbol if fills else next(iter(engine.marks), None)
    if anchor is not None and engine.revalue:  # observe every chain series' equity now
        for series in book.chain:
            k.observe(engine.g, engine.sf, engine.si, series.index, engine.clock_ns)
    return replayed


def _mark(engine: Engine, y: int) -> float:
    return float(engine.yf[y, L.Y_MARK]) if engine.yi[y, L.Y_HAS_MARK] else 0.0


State = tuple[float, float, int]  # a position's (q, cost, 1 if open else 0)


def _move_holdings(engine: Engine, aggregates: tuple[Series, ...], symbol: str, old: State, new: State) -> None:
    """Shift each aggregate's holding in `symbol` from the book's old position to its new one."""
    from collector.engine.engine import kernel

    k = kernel()
    old_q, old_c, was_open = old
    new_q, new_c, now_open = new
    y = engine._symbol(symbol)
    mark = _mark(engine, y)
    hf, hi = engine.hf, engine.hi
    for series in aggregates:
        h = engine._holding(series, y)
        hf, hi = engine.hf, engine.hi
        if not hi[h, L.H_ALIVE]:
            k._revive(hf, hi, engine.si, h, series.index)
        old_v, before_c = engine.value(h), hf[h, L.H_C]
        hf[h, L.H_Q] += new_q - old_q
        hf[h, L.H_C] += new_c - old_c
        hi[h, L.H_BOOKS] += now_open - was_open
        if hi[h, L.H_BOOKS] == 0:
            hf[h, L.H_Q] = hf[h, L.H_C] = 0.0
        hf[h, L.H_V] = hf[h, L.H_Q] * mark
        series.unrealized += float((hf[h, L.H_V] - old_v) - (hf[h, L.H_C] - before_c))
        if hf[h, L.H_Q]:
            k._hold(engine.g, hf, hi, engine.yi, h, y)
        else:
            k._unhold(engine.g, hi, engine.yi, h, y)
            if hi[h, L.H_BOOKS] == 0:
                k._drop(hi, engine.si, h, series.index)


def _position_state(engine: Engine, p: int | None) -> State:
    """(q, cost, 1 if open else 0) of a book's position in a symbol."""
    if p is None or not engine.pi[p, L.P_LOTS]:
        return 0.0, 0.0, 0
    return float(engine.pf[p, L.P_Q]), float(engine.pf[p, L.P_C]), 1


def _replace_series(engine: Engine, live: Series, scratch: Engine, new: Series | None) -> None:
    """The live book series takes the replay's state; its holdings are revalued at the live marks."""
    from collector.engine.engine import kernel

    k = kernel()
    i = live.index
    kept_f, kept_i = engine.sf[i, _KEPT_FLOATS].copy(), engine.si[i, _KEPT_INTS].copy()
    if new is None:
        engine.sf[i] = 0.0
        engine.si[i] = 0
        engine.sf[i, L.S_DAY] = -1.0
        fresh: dict[str, tuple[float, float, int]] = {}
    else:
        engine.sf[i] = scratch.sf[new.index]
        engine.si[i] = scratch.si[new.index]
        fresh = {sym: (h.q, h.c, h.books) for sym, h in new.holdings.items()}
    engine.sf[i, _KEPT_FLOATS], engine.si[i, _KEPT_INTS] = kept_f, kept_i
    for symbol in list(live.holdings):  # the old holdings go, then the replay's come in its order
        y = engine.symbol_ids[symbol]
        h = engine.holding_ids[(i, y)]
        k._unhold(engine.g, engine.hi, engine.yi, h, y)
        k._drop(engine.hi, engine.si, h, i)
    unrealized = 0.0
    for symbol, (q, c, books) in fresh.items():
        if not (q or c):
            continue
        y = engine._symbol(symbol)
        h = engine._holding(live, y)
        k._revive(engine.hf, engine.hi, engine.si, h, i)
        v = q * _mark(engine, y)
        engine.hf[h, L.H_Q], engine.hf[h, L.H_C], engine.hf[h, L.H_V] = q, c, v
        engine.hi[h, L.H_BOOKS] = books
        unrealized += v - c
        if q:
            k._hold(engine.g, engine.hf, engine.hi, engine.yi, h, y)
    live.unrealized = unrealized


def _replace_positions(engine: Engine, key: BookKey, scratch: Engine, new: dict[str, int]) -> None:
    """The live book's positions (lots and the open round trip) become the replay's."""
    book = engine.books[key]
    for symbol in set(book.positions) | set(new):
        p = book.positions.get(symbol)
        if p is None:
            p = engine._position((*key, symbol))
        head = int(engine.pi[p, L.P_HEAD])  # the old lots back to the free list
        while head >= 0:
            following = int(engine.ln[head])
            engine.ln[head] = engine.g[L.G_FREE]
            engine.g[L.G_FREE] = head
            engine.g[L.G_NFREE] += 1
            head = following
        engine.pi[p, L.P_HEAD] = engine.pi[p, L.P_TAIL] = -1
        engine.pi[p, L.P_LOTS] = engine.pi[p, L.P_DIRECTION] = engine.pi[p, L.P_ENTRY_TS] = 0
        engine.pf[p] = 0.0
        source = new.get(symbol)
        if source is None:
            continue
        engine.pf[p] = scratch.pf[source]
        engine.pi[p, L.P_DIRECTION] = scratch.pi[source, L.P_DIRECTION]
        engine.pi[p, L.P_ENTRY_TS] = scratch.pi[source, L.P_ENTRY_TS]
        lots = []
        lot = int(scratch.pi[source, L.P_HEAD])
        while lot >= 0:
            lots.append(scratch.lf[lot].copy())
            lot = int(scratch.ln[lot])
        engine._reserve_lots(len(lots))
        for values in lots:
            slot = int(engine.g[L.G_FREE])
            engine.g[L.G_FREE] = engine.ln[slot]
            engine.g[L.G_NFREE] -= 1
            engine.lf[slot] = values
            engine.ln[slot] = -1
            tail = int(engine.pi[p, L.P_TAIL])
            if tail >= 0:
                engine.ln[tail] = slot
            else:
                engine.pi[p, L.P_HEAD] = slot
            engine.pi[p, L.P_TAIL] = slot
            engine.pi[p, L.P_LOTS] += 1
