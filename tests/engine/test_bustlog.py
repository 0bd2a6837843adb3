"""The bust log's rows give back the fills added, field by field and type by type, across ring wrap-arounds."""

from __future__ import annotations

import copy
from collections import deque

from collector.engine.bustlog import FOLD, MAX_ID_BYTES, MIN_ID_BYTES, BookLog
from collector.engine.engine import Engine
from collector.engine.revise import revise
from collector.model import Fill

T0 = 1_700_000_000 * 10**9


def _fills(n: int) -> list[Fill]:
    """One book's fills with every optional field present or not, and some only an object can hold."""
    fills = []
    for i in range(n):
        fill = Fill(T0 + i, "A", "s", f"SYM{i % 3}", ("buy", "sell")[i % 2], 1.0 + i % 5, 100.0 + i % 7, f"f{i}")
        fill.fee = 0.25 * (i % 3)
        fill.order_id = f"o{i // 2}" if i % 4 else None
        fill.venue = "XNAS" if i % 5 == 0 else None
        fill.arrival_price = 99.5 if i % 7 == 0 else None
        fill.order_ts = T0 + i - 10 if i % 3 == 0 else None
        if i % 11 == 0:
            fill.fill_id = f"{i}-" + "x" * MAX_ID_BYTES  # too long for a row
        elif i % 13 == 0:
            fill.fill_id = f"é{i}\udc80"  # not UTF-8 encodable
        elif i % 17 == 0:
            fill.qty = 3  # an int: a row would give back 3.0
        elif i % 19 == 0:
            fill.fill_id = "long-" + "y" * 40 + str(i)  # widens the id columns
        fills.append(fill)
    return fills


def _exact(got: list[Fill], want: list[Fill]) -> None:
    assert [[(type(v), v) for v in map(lambda name: getattr(f, name), Fill.__slots__)] for f in got] == [
        [(type(v), v) for v in map(lambda name: getattr(f, name), Fill.__slots__)] for f in want
    ]


def test_rows_give_back_the_window_and_the_fills_leaving_it_after_wrap_around() -> None:
    window, fills = 50, _fills(1000)
    log, engine = BookLog(window), Engine()
    ring, old = log.ring(("A", "s")), deque[Fill]()  # `old`: the deque of objects the rows replaced
    left: list[Fill] = []
    for fill in fills:
        log.add(fill, engine)
        old.append(fill)
        if len(old) > window:
            left.append(old.popleft())
        if len(left) >= FOLD:
            left.clear()
        _exact(ring.fills(), list(old))
        assert ring.leaving == len(left)
    assert len(ring.rows) < 3 * window  # the ring wrapped around many times instead of growing
    assert ring.objects and ring.rows.dtype["fill_id"].itemsize > MIN_ID_BYTES  # both fallbacks were taken
    _exact(ring.take_leaving(), left)
    for fill in fills[-window:]:
        assert ring.find(fill.fill_id) == list(old).index(fill)
    assert ring.find(fills[0].fill_id) is None


def test_a_bust_after_wrap_around_replays_the_same_fills_as_objects_did() -> None:
    window, fills = 40, _fills(700)
    engine = Engine(bust_window=window)
    engine.on_events(fills)
    busted = fills[-25]
    bust = Fill(busted.ts + 5, "A", "", "", "buy", 0.0, 0.0, "bust-1", action="cancel", ref_fill_id=busted.fill_id)
    revision = revise(engine, bust)
    _exact([revision.original], [busted])
    _exact([f for f, _ in revision.replayed], [f for f in fills[-window:] if f is not busted])
    # the same realized PnL per fill as a fresh engine fed the stream without the busted fill
    fresh = Engine().on_events([copy.copy(f) for f in fills if f is not busted]).realized[-window + 1 :]
    assert [pnl for _, pnl in revision.replayed] == fresh
