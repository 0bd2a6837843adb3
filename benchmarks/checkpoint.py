"""Checkpoint benchmark: size, total time and engine-thread block time at ~350, ~3k and ~30k series.

For each desk size an engine books a synthetic stream (every book trades; the timestamp memory
holds the last 1M fills' entries) and saves it. A fresh process loads that checkpoint (so its
memory, which the fork's cost grows with, is a restarted collector's, not the stream's), then
takes checkpoints as the collector takes them: a forked child writes the state (collector/run/forked.py: encode +
checksum + fsync + rename) while this thread keeps booking fills in 500-fill batches. Engine
thread block = the fork (best, median and worst of --repeat checkpoints, the first included);
the copy-on-write faults the parent then takes are spread over its next batches: the longest
batch while a child writes is printed next to the longest one without. Baseline, same run, same
directory: writing and fsyncing the same number of bytes from one buffer (the floor of any
format). Alert rule states are not included (collector/alerts owns their format).

    .venv/bin/python benchmarks/checkpoint.py [--fills-per-book 40] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.engine import stream
from collector.engine.engine import Engine
from collector.model import Fill
from collector.run import checkpoint, state_data
from collector.run.forked import Forked
from collector.store.lineproto import UniqueTimestamps

SHAPES = ((31, 10, 200), (300, 10, 1000), (300, 100, 1000))  # strategies, accounts, symbols → ~352, ~3.3k, ~30k
STAMPS = 2_000_000  # timestamp memory capacity, half of it filled


def raw_write(path: Path, size: int) -> float:
    data = os.urandom(size)
    start = time.perf_counter()
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return time.perf_counter() - start


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def book(engine: Engine, fills: list[Fill], until: Callable[[], bool]) -> float:
    """Book 500-fill batches until until() (at least one); the longest batch's seconds."""
    longest, booked = 0.0, 0
    while booked < len(fills) and (booked == 0 or not until()):
        start = time.perf_counter()
        engine.on_events(fills[booked : booked + 500])
        longest = max(longest, time.perf_counter() - start)
        booked += 500
    return longest


def build(shape: tuple[int, int, int], fills_per_book: int, path: Path) -> dict[str, int]:
    """Book the desk's stream and save its checkpoint (synchronously: the starting point, not measured)."""
    strategies, accounts, _ = shape
    fills = stream(strategies * accounts * fills_per_book, seed=3, shape=shape)
    engine = Engine()
    stamps = UniqueTimestamps(STAMPS)
    for i in range(0, len(fills), 5000):
        engine.on_events(fills[i : i + 5000])
    remembered = fills[-STAMPS // 2 :]
    for fill in remembered:
        stamps.assign(fill.account, fill.ts, fill.fill_id)
    checkpoint.save(path, checkpoint.Checkpoint(engine, stamps, (1, 0), [], {"file": [1, 2, 3]}))
    return {"series": len(engine.series), "fills": len(fills), "stamps": len(remembered)}


def spread(seconds: list[float]) -> list[float]:
    """[best, median, worst] in ms."""
    ms = sorted(s * 1000 for s in seconds)
    return [round(ms[0], 1), round(statistics.median(ms), 1), round(ms[-1], 1)]


def forks(shape: tuple[int, int, int], repeat: int, path: Path) -> dict[str, Any]:
    """In a fresh process holding only the loaded state (a restarted collector's memory, not the stream's):
    `repeat` checkpoints forked while this thread books fills."""
    loaded = checkpoint.load(path, {}, 1e6, STAMPS)
    assert loaded is not None
    engine = loaded.engine
    extra = stream(20_000 * (repeat + 1), seed=4, shape=shape)
    book(engine, extra[:10_000], lambda: False)  # warm-up: the kernel loaded, the new books opened
    quiet = book(engine, extra[10_000:20_000], lambda: False)  # the longest batch with no child
    arrays = state_data.engine_state(engine).arrays
    buffers = {name: array.copy() for name, array in arrays.items()}
    copies = []  # baseline: what copying the arrays in the engine thread cost (into buffers already faulted in)
    for _ in range(repeat):
        start = time.perf_counter()
        for name, array in arrays.items():
            np.copyto(buffers[name], array)
        copies.append(time.perf_counter() - start)
    del buffers
    blocks, totals, during, size = [], [], [], 0
    for i in range(repeat):
        start = time.perf_counter()
        child = Forked(lambda: checkpoint.save(path, loaded))
        blocks.append(time.perf_counter() - start)
        during.append(book(engine, extra[(i + 1) * 20_000 : (i + 2) * 20_000], child.done))
        size = child.result()
        totals.append(time.perf_counter() - start)
    return {
        "size": size,
        "rss_mb": round(rss_mb()),
        "block_ms": spread(blocks),
        "copy_ms": spread(copies),
        "block_vs_copy": round(statistics.median(blocks) / statistics.median(copies), 2),
        "longest_batch_ms": round(max(during) * 1000, 1),
        "longest_batch_quiet_ms": round(quiet * 1000, 1),
        "total_s": min(totals),
    }


def measure(shape: tuple[int, int, int], fills_per_book: int, repeat: int, directory: Path) -> dict[str, Any]:
    path = directory / "checkpoint.json"
    built = build(shape, fills_per_book, path)
    command = [sys.executable, __file__, "--forks", str(path), "--shape", ",".join(map(str, shape))]
    answer = subprocess.run([*command, "--repeat", str(repeat)], check=True, capture_output=True, text=True)
    measured: dict[str, Any] = json.loads(answer.stdout)
    total, size = measured.pop("total_s"), measured.pop("size")
    floor = raw_write(directory / "raw.bin", size)
    return (
        built
        | measured
        | {
            "size_mb": round(size / 1e6, 1),
            "total_ms": round(total * 1000, 1),
            "raw_write_ms": round(floor * 1000, 1),
            "total_vs_raw_write": round(total / floor, 1),
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fills-per-book", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--forks", type=Path, help=argparse.SUPPRESS)  # the measuring process: its checkpoint
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.forks is not None:
        strategies, accounts, symbols = map(int, args.shape.split(","))
        print(json.dumps(forks((strategies, accounts, symbols), args.repeat, args.forks)))
        return 0
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parents[1]) as tmp:
        results = [measure(shape, args.fills_per_book, args.repeat, Path(tmp)) for shape in SHAPES]
    if args.json:
        print(json.dumps(results))
        return 0
    for r in results:
        best, median, worst = r["block_ms"]
        print(
            f"{r['series']:>7,} series ({r['fills']:,} fills, {r['stamps']:,} timestamps, RSS {r['rss_mb']} MB):"
            f" {r['size_mb']:>6} MB, engine thread blocked {best}/{median}/{worst} ms (best/median/worst fork)"
            f" = {r['block_vs_copy']}x copying the arrays (median; {'/'.join(map(str, r['copy_ms']))} ms),"
            f" longest 500-fill batch while the child writes {r['longest_batch_ms']} ms"
            f" (without: {r['longest_batch_quiet_ms']} ms), total {r['total_ms']:>7} ms"
            f" (best) = {r['total_vs_raw_write']}x a raw write+fsync of the same bytes ({r['raw_write_ms']} ms)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
