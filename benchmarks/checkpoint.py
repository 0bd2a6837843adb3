"""Checkpoint benchmark: size, total time and engine-thread block time at ~350, ~3k and ~30k series.

For each desk size an engine books a synthetic stream (every book trades; the timestamp memory
holds one entry per fill, up to its default capacity), then a checkpoint is taken as the
collector takes it: `checkpoint.snapshot` in the calling thread (what blocks the engine thread),
`checkpoint.save` (encode + checksum + fsync + rename) in a background thread while this thread
keeps booking fills (so the block it sees is measured under a concurrent writer too). Baseline,
same run, same directory: writing and fsyncing the same number of bytes from one buffer (the
floor of any format). Alert rule states are not included (collector/alerts owns their format).

    .venv/bin/python benchmarks/checkpoint.py [--fills-per-book 40] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.engine import stream
from collector.engine.engine import Engine
from collector.run import checkpoint, state_data
from collector.store.lineproto import UniqueTimestamps

SHAPES = ((31, 10, 200), (300, 10, 1000), (300, 100, 1000))  # strategies, accounts, symbols → ~352, ~3.3k, ~30k


def raw_write(path: Path, size: int) -> float:
    data = os.urandom(size)
    start = time.perf_counter()
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return time.perf_counter() - start


def measure(shape: tuple[int, int, int], fills_per_book: int, repeat: int, directory: Path) -> dict[str, Any]:
    strategies, accounts, _ = shape
    fills = stream(strategies * accounts * fills_per_book, seed=3, shape=shape)
    engine = Engine()
    stamps = UniqueTimestamps()
    for i in range(0, len(fills), 5000):
        engine.on_events(fills[i : i + 5000])
    remembered = fills[-1_000_000:]
    for fill in remembered:
        stamps.assign(fill.account, fill.ts, fill.fill_id)
    state = checkpoint.Checkpoint(engine, stamps, (1, 0), [], {"file": [1, 2, 3]})
    path = directory / "checkpoint.json"
    extra = stream(20_000, seed=4, shape=shape)
    blocks, totals, size = [], [], 0
    snap = checkpoint.Snapshot(state_data.EngineState({}, [], [], {}), {})
    state_data.reserve(snap.engine, engine)  # the buffers the collector's start prepares off the engine thread
    for _ in range(repeat):
        start = time.perf_counter()
        snap = checkpoint.snapshot(state, snap)  # the previous one's buffers, as the collector does
        blocks.append(time.perf_counter() - start)
        result: list[int] = []

        def write(out: list[int] = result, s: checkpoint.Snapshot = snap) -> None:
            out.append(checkpoint.save(path, s))
            state_data.reserve(s.engine, engine)  # as the collector's writer thread: buffers for the next copy

        writer = threading.Thread(target=write)
        writer.start()
        booked = 0
        while writer.is_alive() and booked < len(extra):  # the engine goes on meanwhile
            engine.on_events(extra[booked : booked + 500])
            booked += 500
        writer.join()
        totals.append(time.perf_counter() - start)
        size = result[0]
    start = time.perf_counter()
    state_data.stamps_data(stamps)
    stamps_ms = (time.perf_counter() - start) * 1000
    loaded = checkpoint.load(path, {}, 1e6, 10**7)
    assert loaded is not None and len(loaded.engine.series) == len(engine.series)
    floor = raw_write(directory / "raw.bin", size)
    return {
        "series": len(engine.series),
        "fills": len(fills),
        "stamps": len(remembered),
        "size_mb": round(size / 1e6, 1),
        "block_ms": [round(x * 1000, 1) for x in (min(blocks), statistics.median(blocks), max(blocks))],
        "block_stamps_ms": round(stamps_ms, 1),
        "total_ms": round(min(totals) * 1000, 1),
        "raw_write_ms": round(floor * 1000, 1),
        "total_vs_raw_write": round(min(totals) / floor, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fills-per-book", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parents[1]) as tmp:
        results = [measure(shape, args.fills_per_book, args.repeat, Path(tmp)) for shape in SHAPES]
    if args.json:
        print(json.dumps(results))
        return 0
    for r in results:
        print(
            f"{r['series']:>7,} series ({r['fills']:,} fills, {r['stamps']:,} timestamps): {r['size_mb']:>6} MB,"
            f" engine thread blocked {'/'.join(map(str, r['block_ms']))} ms (best/median/worst of {args.repeat},"
            f" the first included; timestamp memory's part {r['block_stamps_ms']} ms), total {r['total_ms']:>7} ms"
            f" (best) = {r['total_vs_raw_write']}x a raw write+fsync of the same bytes ({r['raw_write_ms']} ms)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
