"""Checkpoint benchmark: size, total time and engine-thread block time at ~350, ~3k and ~30k series.

For each desk size an engine books a synthetic stream with the default alert rules
(rules/alerts.yaml) evaluated on every batch, every fill id goes into a duplicate-id journal
(collector/run/seen.py) and the timestamp memory holds one entry per fill, up to its capacity.
Then a checkpoint is taken as `stratmon run` takes it (Collector._checkpoint): in the calling
thread (what blocks the engine thread) the id journal's fsync (`seen.durable_position`), the
alert states (`alerts_data(export_state())`) and `checkpoint.snapshot` (the engine's arrays and the
timestamp memory copied into buffers `checkpoint.reserve` prepared off that thread); then
`checkpoint.save` (encode + checksum + fsync + rename) and `reserve` in a background thread while
this thread keeps booking fills (so the block it sees is measured under a concurrent writer too).
Not included: the writer's flush to InfluxDB that precedes a checkpoint (benchmarks/latency.py).
Baseline, same run, same directory: writing and fsyncing the same number of bytes from one buffer
(the floor of any format).

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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.engine import stream  # noqa: E402
from collector.alerts.evaluator import AlertEngine  # noqa: E402
from collector.alerts.rules import load_rules  # noqa: E402
from collector.config import IngestConfig  # noqa: E402
from collector.engine.engine import Engine  # noqa: E402
from collector.model import Fill  # noqa: E402
from collector.run import checkpoint, state_data  # noqa: E402
from collector.run.seen import SeenIds  # noqa: E402
from collector.run.state_data import alerts_data  # noqa: E402
from collector.store.lineproto import UniqueTimestamps  # noqa: E402

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
    alerts = AlertEngine(load_rules(ROOT / "rules" / "alerts.yaml"), engine, log_events=False)
    seen = SeenIds(directory, IngestConfig().dedupe_window)
    seen.restore(None)
    stamps = UniqueTimestamps()

    def book(batch: list[Fill]) -> None:  # as the collector's engine thread, minus the writer
        seen.add_many(batch)
        clock = engine.clock_ns
        alerts.on_batch(batch, engine.on_events(batch), clock)
        alerts.on_tick(engine.take_changed(), engine.clock_ns)

    for i in range(0, len(fills), 5000):
        book(fills[i : i + 5000])
    remembered = fills[-1_000_000:]
    for fill in remembered:
        stamps.assign(fill.account, fill.ts, fill.fill_id)
    state = checkpoint.Checkpoint(engine, stamps, (1, 0), [], {"file": [1, 2, 3]})
    path = directory / "checkpoint.json"
    extra = stream(20_000, seed=4, shape=shape)
    parts: dict[str, list[float]] = {"block": [], "seen": [], "alerts": [], "snapshot": [], "total": []}
    size = 0
    snap = checkpoint.Snapshot(state_data.EngineState({}, [], [], {}), {})
    checkpoint.reserve(snap, state)  # the buffers the collector's start prepares off the engine thread
    for _ in range(repeat):
        start = time.perf_counter()
        state.seen_position = seen.durable_position()
        after_seen = time.perf_counter()
        with checkpoint.no_gc():
            state.alerts = alerts_data(alerts.export_state())
            after_alerts = time.perf_counter()
            snap = checkpoint.snapshot(state, snap)  # the previous one's buffers, as the collector does
        end = time.perf_counter()
        for name, took in (("block", end - start), ("seen", after_seen - start)):
            parts[name].append(took)
        parts["alerts"].append(after_alerts - after_seen)
        parts["snapshot"].append(end - after_alerts)
        result: list[int] = []

        def write(out: list[int] = result, s: checkpoint.Snapshot = snap) -> None:
            out.append(checkpoint.save(path, s))
            checkpoint.reserve(s, state)  # as the collector's writer thread: buffers for the next copy

        writer = threading.Thread(target=write)
        writer.start()
        booked = 0
        while writer.is_alive() and booked < len(extra):  # the engine goes on meanwhile
            book(extra[booked : booked + 500])
            booked += 500
        writer.join()
        parts["total"].append(time.perf_counter() - start)
        size = result[0]
    loaded = checkpoint.load(path, {}, 1e6, 10**7)
    assert loaded is not None and len(loaded.engine.series) == len(engine.series)
    seen.close()
    floor = raw_write(directory / "raw.bin", size)
    spread = {name: [round(x * 1000, 1) for x in (min(v), statistics.median(v), max(v))] for name, v in parts.items()}
    return {
        "series": len(engine.series),
        "fills": len(fills),
        "stamps": len(remembered),
        "watches": len(state.alerts),
        "size_mb": round(size / 1e6, 1),
        "block_ms": spread["block"],
        "seen_ms": spread["seen"],
        "alerts_ms": spread["alerts"],
        "snapshot_ms": spread["snapshot"],
        "total_ms": spread["total"][0],
        "raw_write_ms": round(floor * 1000, 1),
        "total_vs_raw_write": round(min(parts["total"]) / floor, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fills-per-book", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    for shape in SHAPES:
        with tempfile.TemporaryDirectory(dir=ROOT) as tmp:  # its own id journal
            results.append(measure(shape, args.fills_per_book, args.repeat, Path(tmp)))
    if args.json:
        print(json.dumps(results))
        return 0
    for r in results:
        print(
            f"{r['series']:>7,} series ({r['fills']:,} fills, {r['stamps']:,} timestamps, {r['watches']:,} alert"
            f" watches): {r['size_mb']:>6} MB, engine thread blocked {'/'.join(map(str, r['block_ms']))} ms"
            f" (best/median/worst of {args.repeat}, the first included; of it: id journal fsync"
            f" {'/'.join(map(str, r['seen_ms']))}, alert states {'/'.join(map(str, r['alerts_ms']))}, engine arrays"
            f" + timestamp memory {'/'.join(map(str, r['snapshot_ms']))}), total {r['total_ms']:>7} ms (best) ="
            f" {r['total_vs_raw_write']}x a raw write+fsync of the same bytes ({r['raw_write_ms']} ms)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
