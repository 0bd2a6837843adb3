"""Memory: bytes per remembered fill id and per timestamp key, and RSS of `stratmon run` over a long stream.

1. Duplicate-id memory, measured with tracemalloc in one run: the structure `run` and `ingest` used
   before (an OrderedDict of (account, fill_id) tuples, the baseline) against `RecentIds` (the
   compact window of collector/idwindow.py: hashes and journal offsets in numpy arrays) and
   `SeenIds` (the same window over `run`'s journal), each holding `--ids` distinct ids.
2. Timestamp memory (`UniqueTimestamps`, the de-clash memory of `fills` keys) holding `--stamps` keys.
3. `stratmon run` (file source, default alert rules, a private influxd) streaming `--run-fills`
   fills; its RSS is sampled every `--sample` seconds and printed against the fills processed.
   Flat = the RSS of the last quarter of the stream within 10% of its mean over the second half.

    .venv/bin/python benchmarks/memory.py [--ids 1000000] [--stamps 500000] [--run-fills 1000000] [--json]
    (the issue's figure: --ids 5000000 --stamps 2000000 --run-fills 10000000)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector.intake import RecentIds  # noqa: E402
from collector.run.seen import SeenIds  # noqa: E402
from collector.sources.synthetic import synthetic_fills  # noqa: E402
from collector.store.influxd import LocalInfluxd  # noqa: E402
from collector.store.lineproto import UniqueTimestamps  # noqa: E402

BATCH = 2000


def traced(build: Callable[[], object]) -> tuple[int, object]:
    """Bytes still allocated after `build()` (the structure it returns is kept alive)."""
    tracemalloc.start()
    kept = build()
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return current, kept


def _keys(n: int) -> list[tuple[str, str]]:
    return [(f"ACC{i % 10:02d}", f"F7-{i}") for i in range(n)]


def ordered_dict_ids(n: int) -> OrderedDict[tuple[str, str], None]:
    """The baseline: what RecentIds was (new strings per id, as decoding makes them)."""
    seen: OrderedDict[tuple[str, str], None] = OrderedDict()
    for key in _keys(n):
        if key not in seen:
            seen[key] = None
            if len(seen) > n:
                seen.popitem(last=False)
    return seen


def recent_ids(n: int) -> RecentIds:
    ids, keys = RecentIds(n), _keys(n)
    for start in range(0, n, BATCH):
        ids.add_many(keys[start : start + BATCH])
    return ids


def seen_ids(n: int, directory: Path) -> SeenIds:
    seen = SeenIds(directory, n)
    seen.restore(None)
    for account, fill_id in _keys(n):
        seen.add(account, fill_id)
    return seen


def _stamp_keys(n: int) -> list[tuple[str, int, str]]:
    base = 1_700_000_000_000_000_000
    return [(f"ACC{i % 10:02d}|strat_{i % 31:02d}|SYM{i % 50:03d}|buy", base + i * 1000, f"F7-{i}") for i in range(n)]


def ordered_dict_stamps(n: int) -> OrderedDict[tuple[str, int], str]:
    """The baseline: what UniqueTimestamps kept, (series, ts) → fill id, each series string shared."""
    taken: OrderedDict[tuple[str, int], str] = OrderedDict()
    series: dict[str, str] = {}
    for name, ts, fill_id in _stamp_keys(n):
        taken[(series.setdefault(name, name), ts)] = fill_id
    return taken


def stamps(n: int) -> UniqueTimestamps:
    memory = UniqueTimestamps(n)
    for series, ts, fill_id in _stamp_keys(n):
        memory.assign(series, ts, fill_id)
    return memory


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def stream_run(
    workdir: Path, fills: int, sample_s: float, say: Callable[[str], None]
) -> list[tuple[float, int, float]]:
    """(seconds, fills processed, RSS MB) samples of `stratmon run` over a file of `fills` fills."""
    path = workdir / "fills.jsonl"
    with open(path, "wb") as handle:
        for record in synthetic_fills(fills, seed=7, start_ns=time.time_ns() - 30 * 86_400 * 10**9, step_ns=100_000):
            handle.write(orjson.dumps(record) + b"\n")
    server = LocalInfluxd(workdir / "influxd")
    influx = server.start().url
    config = workdir / "stratmon.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(workdir / "state"),
                "influx": {"url": influx, "database": "memory"},
                "spool": {"dir": str(workdir / "spool")},
                "ingest": {"dead_letter": str(workdir / "dead.jsonl")},
                "sources": [{"type": "file", "paths": [str(path)], "batch_lines": 5000}],
                "alerts": {"enabled": True, "rules": str(ROOT / "rules" / "alerts.yaml")},
                "run": {"health_interval": 1.0},
                "jobs": {"enabled": False},
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATMON_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "collector", "run", "--config", str(config), "--log-level", "ERROR"], env=env, cwd=ROOT
    )
    samples: list[tuple[float, int, float]] = []
    session, started = requests.Session(), time.monotonic()
    try:
        while process.poll() is None:
            answer = session.get(
                f"{influx}/query", params={"db": "memory", "q": "SELECT last(fills_in) FROM collector"}
            ).json()
            series = answer["results"][0].get("series") if answer.get("results") else None
            done = int(series[0]["values"][0][1]) if series else 0
            samples.append((time.monotonic() - started, done, rss_mb(process.pid)))
            say(f"  {samples[-1][0]:>7.1f} s {done:>11,} fills {samples[-1][2]:>8.1f} MB")
            if done >= fills:
                break
            time.sleep(sample_s)
    finally:
        process.terminate()
        process.wait(120)
        server.stop()
    if not samples or samples[-1][1] < fills:
        raise SystemExit(f"stratmon run ended before processing {fills} fills (exit {process.returncode})")
    return samples


def _say(text: str) -> None:
    print(text, flush=True)


def _quiet(text: str) -> None:
    pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", type=int, default=1_000_000, help="ids in the duplicate-id window (default 1M)")
    parser.add_argument("--stamps", type=int, default=500_000, help="keys in the timestamp memory (default 500k)")
    parser.add_argument(
        "--run-fills", type=int, default=1_000_000, help="fills streamed through stratmon run (0: skip)"
    )
    parser.add_argument("--sample", type=float, default=2.0, help="seconds between RSS samples")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    n = args.ids
    report: dict[str, Any] = {"ids": n, "stamps": args.stamps}
    say: Callable[[str], None] = _quiet if args.json else _say
    with tempfile.TemporaryDirectory(prefix="stratmon-memory-") as tmp:
        workdir = Path(tmp)
        (workdir / "seen").mkdir()
        say(f"duplicate-id memory, {n:,} ids (tracemalloc):")
        structures: list[tuple[str, Callable[[], object]]] = [
            ("ordered_dict_baseline", lambda: ordered_dict_ids(n)),
            ("recent_ids", lambda: recent_ids(n)),
            ("seen_ids", lambda: seen_ids(n, workdir / "seen")),
        ]
        for name, build in structures:
            size, kept = traced(build)
            row = report[name] = {"bytes_per_id": round(size / n, 1)}
            base = report["ordered_dict_baseline"]
            say(
                f"  {name:<22} {row['bytes_per_id']:>7.1f} B/id ({row['bytes_per_id'] / base['bytes_per_id']:.3f}× "
                "the baseline)"
            )
            if isinstance(kept, SeenIds):
                kept.close()
            del kept
        say(f"timestamp memory, {args.stamps:,} keys (tracemalloc):")
        for name, build in [
            ("timestamp_baseline", lambda: ordered_dict_stamps(args.stamps)),
            ("timestamp_memory", lambda: stamps(args.stamps)),
        ]:
            size, kept = traced(build)
            row = report[name] = {"bytes_per_key": round(size / args.stamps, 1)}
            ratio = row["bytes_per_key"] / report["timestamp_baseline"]["bytes_per_key"]
            say(f"  {name:<22} {row['bytes_per_key']:>7.1f} B/key ({ratio:.3f}× the baseline)")
            del kept
        if args.run_fills:
            (workdir / "run").mkdir()
            say(f"stratmon run, {args.run_fills:,} fills from a file — RSS over time:")
            samples = stream_run(workdir / "run", args.run_fills, args.sample, say)
            half = [rss for _, done, rss in samples if done >= args.run_fills / 2]
            last = [rss for _, done, rss in samples if done >= args.run_fills * 3 / 4]
            mean = sum(half) / len(half)
            run = report["run"] = {
                "fills": args.run_fills,
                "seconds": round(samples[-1][0], 1),
                "peak_rss_mb": round(max(rss for *_, rss in samples), 1),
                "second_half_mean_rss_mb": round(mean, 1),
                "flat": all(abs(rss - mean) <= 0.1 * mean for rss in last),
                "samples": [(round(t, 1), done, round(rss, 1)) for t, done, rss in samples],
            }
            say(
                f"peak RSS {run['peak_rss_mb']:.0f} MB (target < 500 MB) over {run['seconds']:.0f} s; last quarter "
                f"{'flat' if run['flat'] else 'NOT flat'} (within ±10% of the second half's mean {mean:.0f} MB)"
            )
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
