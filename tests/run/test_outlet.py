"""The queue between sources and engine bounds events (memory), not batches."""

from __future__ import annotations

import threading

from collector.model import Mark
from collector.sources.base import EVENTS_PER_BATCH, Batch, Outlet


def _batch(events: int) -> Batch:
    return Batch("s", [Mark(ts=1, symbol="X", price=1.0)] * events)


def test_a_big_batch_counts_as_several_and_an_empty_one_as_one() -> None:
    outlet = Outlet(3, threading.Event())
    assert outlet.offer(_batch(2 * EVENTS_PER_BATCH + 1))  # weighs 3: the queue is now full
    assert not outlet.offer(_batch(0))
    assert outlet.depth() == 1
    outlet.queue.get_nowait()
    assert outlet.offer(_batch(0)) and outlet.offer(_batch(EVENTS_PER_BATCH)) and outlet.offer(_batch(1))
    assert not outlet.offer(_batch(1))
    assert [len(outlet.queue.get_nowait().events) for _ in range(outlet.depth())] == [0, EVENTS_PER_BATCH, 1]
    assert outlet.queue.empty()


def test_a_batch_heavier_than_the_bound_still_goes_in() -> None:
    outlet = Outlet(1, threading.Event())
    assert outlet.put(_batch(10 * EVENTS_PER_BATCH))
    assert outlet.queue.full()
