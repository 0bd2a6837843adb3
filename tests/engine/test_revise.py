"""Busts and corrections re-derive the book as if the original fill had never happened (or had the new values).

Checked against the independent batch computation of test_engine_property on the stream without
the busted fill (or with the corrected one): positions, PnL, fees, trade statistics, exposures
at common marks, at all four levels.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from collector.engine.engine import Engine
from collector.engine.metrics import MinSample
from collector.engine.revise import RevisionError, revise
from collector.model import Fill, Mark
from tests.engine.test_engine_property import T0, _close, batch, streams

EXACT = (
    "realized_pnl",
    "unrealized_pnl",
    "equity",
    "fees",
    "gross_exposure",
    "net_exposure",
    "trades",
    "wins",
    "losses",
    "win_rate",
    "profit_factor",
    "expectancy",
    "avg_win",
    "avg_loss",
    "slippage_bps_avg",
    "fills",
    "volume",
)


def _run(events: list[Fill | Mark], window: int = 1000) -> Engine:
    engine = Engine(bust_window=window)
    engine.sample = MinSample(0, 0)  # the ratios of this small sample are what is checked
    for event in events:
        if isinstance(event, Mark):
            engine.on_mark(event)
        else:
            engine.on_fill(event)
    return engine


def _closing_marks(events: list[Fill | Mark]) -> list[Mark]:
    """One mark per symbol after everything, so both sides value positions at the same prices."""
    last = max(e.ts for e in events)
    return [Mark(last + 1 + i, symbol, 100.0 + i) for i, symbol in enumerate(["X", "Y", "Z"])]


def _compare(engine: Engine, expected_events: list[Fill | Mark]) -> None:
    expected = batch(expected_events)
    got = {(r["level"], r["account"], r["strategy"]): r for rows in engine.rows().values() for r in rows}
    assert set(got) == set(expected)
    for key, want in expected.items():
        names = EXACT + (("loss_streak",) if key[0] == "book" else ())
        for name in names:
            assert _close(got[key][name], want[name], name), (key, name, got[key][name], want[name])


@settings(max_examples=150, deadline=None)
@given(streams(), st.data())
def test_bust_equals_the_stream_without_the_fill(events: list[Fill | Mark], data: st.DataObject) -> None:
    fills = [e for e in events if isinstance(e, Fill)]
    assume(fills)
    busted = data.draw(st.sampled_from(fills))
    engine = _run(events)
    bust = Fill(busted.ts + 5, busted.account, "", "", "buy", 0.0, 0.0, "bust-1", action="cancel")
    bust.ref_fill_id = busted.fill_id
    revise(engine, bust)
    marks = _closing_marks(events)
    for mark in marks:
        engine.on_mark(mark)
    remaining = [e for e in events if e is not busted]
    if not any(isinstance(e, Fill) for e in remaining):
        assert engine.rows() == {level: [] for level in ("portfolio", "account", "strategy", "book")}
        return
    _compare(engine, [*remaining, *marks])


@settings(max_examples=150, deadline=None)
@given(streams(), st.data())
def test_correction_equals_the_stream_with_the_new_values(events: list[Fill | Mark], data: st.DataObject) -> None:
    fills = [e for e in events if isinstance(e, Fill)]
    assume(fills)
    original = data.draw(st.sampled_from(fills))
    corrected = copy.copy(original)
    corrected.qty = data.draw(st.sampled_from([0.5, 1.0, 4.0]))
    corrected.price = data.draw(st.sampled_from([95.0, 100.5]))
    corrected.strategy = data.draw(st.sampled_from([original.strategy, "s3"]))  # may move to another book
    corrected.fill_id = original.fill_id + "-c"
    engine = _run(events)
    event = copy.copy(corrected)
    event.action, event.ref_fill_id = "correct", original.fill_id
    revise(engine, event)
    marks = _closing_marks(events)
    for mark in marks:
        engine.on_mark(mark)
    _compare(engine, [*(corrected if e is original else e for e in events), *marks])


def test_fills_older_than_the_window_still_count_and_cannot_be_busted() -> None:
    events: list[Fill | Mark] = [
        Fill(T0 + i, "A", "s", "X", "buy" if i % 3 else "sell", 1.0 + i % 2, 100.0 + i, f"f{i}") for i in range(12)
    ]
    engine = _run(events, window=4)  # f0..f7 are folded into the book's base
    bust = Fill(T0 + 100, "A", "", "", "buy", 0.0, 0.0, "b", action="cancel", ref_fill_id="f9")
    revise(engine, bust)
    marks = _closing_marks(events)
    for mark in marks:
        engine.on_mark(mark)
    _compare(engine, [*(e for e in events if not (isinstance(e, Fill) and e.fill_id == "f9")), *marks])
    with pytest.raises(RevisionError, match="'f2' of account 'A' is not among the last 4 fills"):
        revise(engine, Fill(T0 + 101, "A", "", "", "buy", 0.0, 0.0, "b2", action="cancel", ref_fill_id="f2"))
    with pytest.raises(RevisionError, match="'f9'"):  # already busted
        revise(engine, bust)
