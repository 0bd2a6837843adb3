"""The duplicate-id window: exact against a dictionary model, also when every hash collides."""

from __future__ import annotations

import random
import tempfile
from collections import OrderedDict
from collections.abc import Callable

import pytest

from collector.idwindow import IdWindow
from collector.intake import RecentIds


def _model(window: OrderedDict[bytes, None], keys: list[bytes], capacity: int) -> list[bool]:
    """The window's rule: a key is new unless it is among the last `capacity` new keys before its batch
    (batches cut to `capacity`) or earlier in its batch."""
    expected: list[bool] = []
    for start in range(0, len(keys), capacity):
        before, batch = set(window), set()
        for key in keys[start : start + capacity]:
            new = key not in before and key not in batch
            batch.add(key)
            expected.append(new)
            if new:
                window[key] = None
        while len(window) > capacity:
            window.popitem(last=False)
    return expected


@pytest.mark.parametrize(
    ("hasher", "capacity", "batch"),
    [
        (hash, 64, 40),
        (lambda line: len(line) % 3, 40, 12),
        (lambda line: hash(line) % 997, 300, 400),
        (lambda line: (hash(line) % 997) << 32, 300, 400),  # the window keeps the low 32 bits: all equal
    ],
    ids=["python-hash", "three-hashes", "997-hashes", "high-bits-only"],
)
def test_window_matches_the_model(hasher: Callable[[bytes], int], capacity: int, batch: int) -> None:
    rng = random.Random(capacity)
    with tempfile.TemporaryFile() as journal:
        window, model = IdWindow(capacity, journal, hasher=hasher), OrderedDict[bytes, None]()
        duplicates = 0
        for _ in range(300):
            keys = [f"A\t{rng.randrange(3 * capacity)}\n".encode() for _ in range(rng.randint(1, batch))]
            got = [window.add(keys[0])] if len(keys) == 1 else window.add_many(keys)
            expected = _model(model, keys, capacity)
            assert got == expected
            duplicates += expected.count(False)
        assert len(window) == len(model) and duplicates > 300  # the stream did exercise duplicates
        journal.seek(0)
        lines = journal.read().splitlines(keepends=True)
        assert lines[-len(model) :] == list(model)  # the window is the journal's suffix, in order
        again = IdWindow(capacity, journal, window.length, hasher=hasher)  # a restart from the journal
        again.load(lines)
        probe = [f"A\t{rng.randrange(3 * capacity)}\n".encode() for _ in range(capacity)]
        assert again.add_many(probe) == _model(model, probe, capacity)


def test_moving_to_a_new_journal_keeps_the_window_and_offsets() -> None:
    with tempfile.TemporaryFile() as first, tempfile.TemporaryFile() as second:
        window = IdWindow(10, first, hasher=lambda line: 7)  # one hash: every check reads the journal
        window.add_many([f"A\t{i}\n".encode() for i in range(25)])
        assert window.move_to(second) == len(b"".join(f"A\t{i}\n".encode() for i in range(15, 25)))
        assert not window.add(b"A\t20\n") and not window.add(b"A\t15\n") and window.add(b"A\t14\n")
        second.seek(0)
        assert second.read().splitlines()[-1] == b"A\t14"


def test_memory_is_at_most_22_bytes_per_id_at_the_default_window() -> None:
    with tempfile.TemporaryFile() as journal:  # 4 B hash + 4 B offset + 4 B × 2²⁴ table slots / 5M
        assert IdWindow(5_000_000, journal).nbytes / 5_000_000 <= 22


def test_recent_ids_compacts_its_file_and_stays_exact() -> None:
    ids = RecentIds(1000)
    assert ids.add_many([("A", str(i)) for i in range(5000)]) == [True] * 5000
    assert len(ids) == 1000 and ids.window.length < 2 * 1000 * len(b"A\t4999\n") + 1  # compacted
    assert not ids.add(("A", "4999")) and not ids.add(("A", "4000")) and ids.add(("A", "3999"))
    assert ids.add(("B", "4999"))  # accounts are separate


def test_offsets_kept_mod_2_32_still_find_lines_past_4_gib() -> None:
    with tempfile.TemporaryFile() as journal, tempfile.TemporaryFile() as moved:
        journal.truncate(start := (1 << 32) - 50)  # sparse: the window's lines straddle byte 2³²
        journal.seek(start)
        window, model = IdWindow(40, journal, start, hasher=lambda line: len(line) % 3), OrderedDict[bytes, None]()
        assert window.nbytes < 40 * 16 + 4 * 128  # 32-bit offsets
        rng = random.Random(5)
        for _ in range(60):
            keys = [f"A\t{rng.randrange(120)}\n".encode() for _ in range(rng.randint(1, 12))]
            assert window.add_many(keys) == _model(model, keys, 40)
        assert window.length > 1 << 32
        window.move_to(moved)
        keys = [f"A\t{i}\n".encode() for i in range(120)]
        assert window.add_many(keys) == _model(model, keys, 40)
