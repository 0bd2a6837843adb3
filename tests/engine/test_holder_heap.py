"""The holder heap (collector/engine/layout.py): each symbol's run holds exactly its holdings with q ≠ 0, and their q.

Runs grow (moved to the heap's end, or all packed into a larger heap) as holdings are added; a
holder leaves by swap-remove. Checked after random batches that open, close and flip many books
in many symbols, and on a copy of the engine.
"""

from __future__ import annotations

import random

import numpy as np

from collector.engine import layout as L
from collector.engine.engine import Engine
from tests.engine.test_kernel_equals_reference import random_stream


def assert_heap_consistent(engine: Engine) -> None:
    heap = engine.g[L.G_WIDTH :].reshape(-1, L.HEAP_WIDTH)
    hf, hi, yi = engine.hf, engine.hi, engine.yi
    for y in range(engine.counts["symbols"]):
        start, count, cap, holdings = yi[y, [L.Y_START, L.Y_COUNT, L.Y_CAP, L.Y_HOLDINGS]].tolist()
        assert count <= holdings <= cap and start + cap <= engine.g[L.G_HEAP_END] <= len(heap)
        run = heap[start : start + count]
        held = np.flatnonzero(
            (hi[: engine.counts["holdings"], L.H_SYMBOL] == y) & (hf[: engine.counts["holdings"], L.H_Q] != 0)
        )
        assert sorted(run[:, 0].tolist()) == held.tolist()
        assert (hi[run[:, 0], L.H_SLOT] == np.arange(start, start + count)).all()
        assert (hi[run[:, 0], L.H_SERIES] == run[:, 1]).all()
        assert (run[:, 2].view(L.FLOAT) == hf[run[:, 0], L.H_Q]).all()  # the slot's q is the holding's
    free = hi[: engine.counts["holdings"], L.H_SLOT] < 0
    assert (hf[: engine.counts["holdings"]][free, L.H_Q] == 0).all()


def test_heap_runs_hold_exactly_the_open_holdings() -> None:
    rng = random.Random(3)
    events = random_stream(rng, 4000, books=7, symbols=12)
    engine = Engine()
    i = 0
    while i < len(events):
        chunk = events[i : i + rng.choice([1, 13, 200])]
        i += len(chunk)
        engine.on_events(chunk)
        if rng.random() < 0.2:
            assert_heap_consistent(engine)
    assert_heap_consistent(engine)
    assert_heap_consistent(engine.copy())
