"""The compact timestamp memory assigns exactly the keys of the dictionary algorithm it replaced."""

from __future__ import annotations

import random
import zlib
from collections import OrderedDict

import numpy as np

from collector.store.lineproto import UniqueTimestamps


class DictTimestamps:
    """The reference: (series, ts) → fill id in an OrderedDict, FIFO-bounded (the previous implementation)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.taken: OrderedDict[tuple[str, int], str] = OrderedDict()

    def assign(self, series: str, ts_ns: int, fill_id: str, stored: dict[tuple[str, int], str]) -> int:
        ts = ts_ns + (zlib.crc32(fill_id.encode()) % 1000 if ts_ns % 1000 == 0 else 0)
        while (self.taken.get((series, ts)) or stored.get((series, ts))) not in (None, fill_id):
            ts += 1
        if (series, ts) not in self.taken:
            self.taken[(series, ts)] = fill_id
            if len(self.taken) > self.capacity:
                self.taken.popitem(last=False)
        return ts


def test_same_keys_as_the_dictionary_algorithm_with_clashes_replays_and_stored_slots() -> None:
    rng = random.Random(5)
    compact, reference = UniqueTimestamps(300), DictTimestamps(300)
    base = 1_700_000_000_000_000_000
    stored = {(f"s{k}", base + k * 1000 + 3): "elsewhere" for k in range(50)}
    moved = 0
    for i in range(6000):
        series = f"s{rng.randrange(5)}"
        fill_id = f"f{rng.randrange(1500)}"  # ids repeat: replays keep their key
        ts = base + rng.randrange(60) * 1000 + (rng.randrange(3) if rng.random() < 0.2 else 0)
        got = compact.assign(series, ts, fill_id, stored)
        assert got == reference.assign(series, ts, fill_id, stored), i
        moved += got != ts + (zlib.crc32(fill_id.encode()) % 1000 if ts % 1000 == 0 else 0)
        if i == 3000:  # a checkpoint and restart half-way
            compact = UniqueTimestamps.restore(compact.export(), 300)
    assert moved > 50 and len(compact) == len(reference.taken)  # clashes did push fills on


def test_at_most_32_bytes_per_remembered_key() -> None:
    stamps = UniqueTimestamps(2_000_000)
    assert stamps._ring.nbytes / 2_000_000 <= 32


def test_export_into_buffers_equals_a_fresh_export_after_the_ring_wraps() -> None:
    stamps = UniqueTimestamps(100)
    for i in range(250):  # past the capacity twice: the oldest key sits mid-ring
        stamps.assign(f"s{i % 7}", i * 1000, f"f{i}")
    fresh = stamps.export()
    for size in (100, 130, 99):  # exact, spare rows, too short (a fresh array instead)
        out = {name: np.full(size, -1, np.int64) for name in ("keys", "owners")}
        copied = stamps.export(out)
        for name in ("keys", "owners"):
            assert copied[name].tolist() == fresh[name].tolist()
            assert (copied[name].base is out[name]) == (size >= 100)
