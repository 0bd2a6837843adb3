"""A worker's duplicate-id window: bounded like `run`'s (its checkpoint text too), exact, kept in arrival order
through a checkpoint (so the same ids are evicted after a restart as without one)."""

from __future__ import annotations

from collector.bus.worker import SeenFills


def keys(first: int, last: int) -> list[tuple[str, str]]:
    return [(f"A{i % 3}", f"f{i}") for i in range(first, last)]


def test_the_window_is_bounded_and_survives_a_checkpoint() -> None:
    seen = SeenFills(1000)
    assert seen.add_many(keys(0, 2500)) == [True] * 2500
    assert seen.add_many(keys(2499, 2501)) == [False, True]  # a duplicate of the window, and a new id
    text = seen.text()
    lines = text.splitlines()
    assert len(lines) == len(seen) == 1000  # however many fills went by
    assert lines == ["\t".join(key) for key in keys(1501, 2501)]  # oldest first
    again = SeenFills(1000)
    again.load(text)
    assert again.text() == text
    for window in (seen, again):  # the same answers, the same evictions
        assert window.add_many(keys(1500, 1502) + keys(3000, 3001)) == [True, False, True]  # 1500: evicted
        assert window.add_many(keys(1502, 1504)) == [True, False]  # 1502: evicted by 3000; 1503: by 1502, same batch
    assert again.text() == seen.text()


def test_an_empty_window() -> None:
    seen = SeenFills(1000)
    assert seen.text() == ""
    seen.load("")
    assert len(seen) == 0
