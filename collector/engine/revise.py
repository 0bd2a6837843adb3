"""Busts and corrections: re-derive the affected book as if the original fill never happened.

Each book keeps its last `window` fills (`BookLog`); fills older than that are folded into a
per-book base engine as they leave the log. A bust (`action: cancel`) or correction
(`action: correct`, the record carrying the corrected values) of a fill in the log replays that
book: a copy of its base plus the log without the fill (or with the corrected one in its place,
in time order; a correction may move the fill to another book, which is replayed too).

Cost: O(window) fills replayed per bust, plus copying one book's base; memory: up to `window`
fills per book. A fill older than the window, unknown, or from before a restart (the log is not
in the checkpoint) cannot be busted: the request is rejected with that reason.

What the replay gives exactly: the book's lots, positions, realized PnL, fees, fills, volume,
slippage and round-trip statistics, and their sums in the strategy/account/portfolio aggregates.
Path-dependent values are not rewritten: the book's drawdown and daily changes come from the
replay of its own fills (their prices as marks), and an aggregate's peak, drawdown, daily changes
and loss streak take the change as of now (the day the bust arrives), as a desk's P&L would.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from collector.engine.positions import Position
from collector.engine.series import Holding, Series
from collector.model import Fill

if TYPE_CHECKING:
    from collector.engine.engine import Engine

BookKey = tuple[str, str]
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
_IDENTITY = ("level", "account", "strategy", "accounts")


class RevisionError(ValueError):
    """A bust/correction that cannot be applied; the message is the dead-letter reason."""


@dataclass
class Revision:
    """What a bust/correction changed: the original fill, its replacement, and the replayed fills' PnL."""

    original: Fill
    replacement: Fill | None
    replayed: list[tuple[Fill, float]] = field(default_factory=list)  # (fill, realized PnL), every rebuilt book


class BookLog:
    """The last `window` fills of every book, and where each (account, fill_id) lives."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.fills: dict[BookKey, deque[Fill]] = {}
        self.where: dict[tuple[str, str], BookKey] = {}
        self.base: dict[BookKey, Engine] = {}  # fills that left the log, booked into a one-book engine

    def add(self, fill: Fill, engine: Engine) -> None:
        key = (fill.account, fill.strategy)
        log = self.fills.get(key)
        if log is None:
            log = self.fills[key] = deque()
        log.append(fill)
        self.where[(fill.account, fill.fill_id)] = key
        if len(log) > self.window:
            old = log.popleft()
            self.where.pop((old.account, old.fill_id), None)
            base = self.base.get(key)
            if base is None:
                base = self.base[key] = _blank(engine)
            base.on_fill(old)


def _blank(engine: Engine) -> Engine:
    from collector.engine.engine import Engine

    return Engine(engine.capital_by_account, engine.default_capital, engine.day_basis, revalue=engine.revalue)


def revise(engine: Engine, event: Fill) -> Revision:
    """Apply a cancel/correct `event` to the engine; RevisionError when its fill is not in the log."""
    log = engine.log
    if log is None:
        raise RevisionError("busts and corrections are not enabled here")
    assert event.ref_fill_id is not None
    key = log.where.get((event.account, event.ref_fill_id))
    if key is None:
        raise RevisionError(
            f"ref_fill_id {event.ref_fill_id!r} of account {event.account!r} is not among the last "
            f"{log.window} fills of any book (unknown, too old, or booked before a restart)"
        )
    fills = list(log.fills[key])
    index = next(i for i, f in enumerate(fills) if f.fill_id == event.ref_fill_id)
    original = fills.pop(index)
    log.where.pop((original.account, original.fill_id), None)
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
            others = list(log.fills.get(target, ()))
            others.insert(_position(others, replacement.ts), replacement)
            revision.replayed += _rebuild(engine, target, others)
    revision.replayed += _rebuild(engine, key, fills)
    return revision


def _position(fills: list[Fill], ts: int) -> int:
    """Index after the last fill at or before ts (a correction keeps its place in time)."""
    return next((i for i in range(len(fills), 0, -1) if fills[i - 1].ts <= ts), 0)


def _rebuild(engine: Engine, key: BookKey, fills: list[Fill]) -> list[tuple[Fill, float]]:
    """Replay one book from its base and `fills`, and move the aggregates above it by the difference."""
    log = engine.log
    assert log is not None
    base = log.base.get(key)
    scratch = copy.deepcopy(base) if base is not None else _blank(engine)
    replayed = [(fill, scratch.on_fill(fill).realized_pnl) for fill in fills]
    log.fills[key] = deque(fills)
    for fill in fills:
        log.where[(fill.account, fill.fill_id)] = key
    book = engine._book(*key)
    rebuilt = scratch.books.get(key)
    new_series = rebuilt.chain[0] if rebuilt is not None else Series("book", *key)
    new_positions = rebuilt.positions if rebuilt is not None else {}
    live = book.chain[0]
    for aggregate in book.chain[1:]:
        for name in ADDITIVE:
            setattr(aggregate, name, getattr(aggregate, name) + getattr(new_series, name) - getattr(live, name))
    for symbol in set(book.positions) | set(new_positions):
        _move_holdings(engine, book.chain[1:], symbol, book.positions.get(symbol), new_positions.get(symbol))
    for name in Series.__slots__:
        if name not in _IDENTITY:
            setattr(live, name, getattr(new_series, name))
    book.positions = dict(new_positions)
    _revalue_book(engine, live)
    engine.touched.update(book.chain)
    anchor = fills[-1].symbol if fills else next(iter(engine.marks), None)
    if anchor is not None and engine.revalue:  # observe every chain series' equity now: a zero holding is 0
        engine._set_mark(anchor, engine.marks[anchor], engine.clock_ns, (), [(s, Holding()) for s in book.chain])
    return replayed


def _move_holdings(
    engine: Engine, aggregates: tuple[Series, ...], symbol: str, old: Position | None, new: Position | None
) -> None:
    """Shift each aggregate's holding in `symbol` from the book's old position to its new one."""
    old_q, old_c, was_open = _position_state(old)
    new_q, new_c, now_open = _position_state(new)
    mark = engine.marks.get(symbol, 0.0)
    holders = engine.holders.setdefault(symbol, {})
    for series in aggregates:
        holding = series.holdings.get(symbol)
        if holding is None:
            holding = series.holdings[symbol] = Holding()
        old_v, before_c = holding.v, holding.c
        holding.q += new_q - old_q
        holding.c += new_c - old_c
        holding.books += now_open - was_open
        if holding.books == 0:
            holding.q = holding.c = 0.0
        holding.v = holding.q * mark
        series.unrealized += (holding.v - old_v) - (holding.c - before_c)
        if holding.q:
            holders[series] = holding
        else:
            holders.pop(series, None)
            if holding.books == 0:
                del series.holdings[symbol]


def _position_state(position: Position | None) -> tuple[float, float, int]:
    """(q, cost, 1 if open else 0) of a book's position in a symbol."""
    if position is None or not position.lots:
        return 0.0, 0.0, 0
    return position.q, position.c, 1


def _revalue_book(engine: Engine, series: Series) -> None:
    """The rebuilt book's holdings at the live marks: unrealized = Σ (q × mark − cost)."""
    series.holdings = {symbol: h for symbol, h in series.holdings.items() if h.q or h.c}
    unrealized = 0.0
    for symbol, holding in series.holdings.items():
        holding.v = holding.q * engine.marks.get(symbol, 0.0)
        unrealized += holding.v - holding.c
        holders = engine.holders.setdefault(symbol, {})
        if holding.q:
            holders[series] = holding
        else:
            holders.pop(series, None)
    for symbol, holders in engine.holders.items():  # symbols the rebuilt book no longer holds
        if series in holders and symbol not in series.holdings:
            del holders[series]
    series.unrealized = unrealized
