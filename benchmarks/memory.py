"""Memory: bytes per remembered fill id and per timestamp key, and RSS of `stratmon run` over a long stream.

1. Duplicate-id memory, measured with tracemalloc in one run: the structure `run` and `ingest` used
   before (an OrderedDict of (account, fill_id) tuples, the baseline) against `RecentIds` (the
   compact window of collector/idwindow.py: hashes and journal offsets in numpy arrays) and
   `SeenIds` (the same window over `run`'s journal), each holding `--ids` distinct ids.
2. Timestamp memory (`UniqueTimestamps`, the de-clash memory of `fills` keys) holding `--stamps` keys.
   Bust-log memory: the last `ingest.bust_window` fills per book after `--bust-fills` fills, as
   `Fill` objects in a deque per book with an (account, fill_id) → book dict (the baseline, as
   before) against the rows of collector/engine/bustlog.py; bytes per fill remembered.
3. Where `stratmon run`'s RSS goes, in a fresh process, part by part in the order run builds them
   (imports, the compiled kernel loaded, the duplicate-id window at its default size, the engine
   with its bust log full for this stream's books, a full queue of fills).
4. `stratmon run` (file source, default config and alert rules, a private influxd) streaming
   `--run-fills` fills; its RSS is sampled every `--sample` seconds and printed against the fills
   processed. Flat = the RSS of the last quarter of the stream within 10% of its mean over the
   second half; growth = MB per million fills between the second half's first and last samples.

    .venv/bin/python benchmarks/memory.py [--ids 1000000] [--stamps 500000] [--budget-fills 150000]
        [--run-fills 1000000] [--sample 2] [--json]
    (the issue's figure: --ids 5000000 --stamps 2000000 --run-fills 10000000)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import orjson
import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector.intake import RecentIds  # noqa: E402
from collector.run.seen import SeenIds  # noqa: E402
from collector.sources.base import EVENTS_PER_BATCH  # noqa: E402
from collector.sources.synthetic import synthetic_fills  # noqa: E402
from collector.store.influxd import LocalInfluxd  # noqa: E402
from collector.store.lineproto import UniqueTimestamps  # noqa: E402

if TYPE_CHECKING:
    from collector.model import Fill

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


def _validated(n: int) -> Iterator[Fill]:
    """`n` fills as the file tail decodes them, one at a time (a fill leaving the log is freed)."""
    from collector.model import FillValidator  # imported here: the RSS budget counts the imports of run

    validator, now = FillValidator(5.0), time.time_ns()
    for record in synthetic_fills(n, start_ns=now - 30 * 86_400 * 10**9, step_ns=100_000):
        yield validator.validate(record, now)


def object_bust_log(n: int, window: int) -> tuple[int, object]:
    """The baseline: the bust log as it was, `Fill` objects (fills that left it are dropped, not folded)."""
    from collector.engine.bustlog import FOLD

    fills: dict[tuple[str, str], deque[Fill]] = {}
    where: dict[tuple[str, str], tuple[str, str]] = {}
    pending: dict[tuple[str, str], list[Fill]] = {}
    for fill in _validated(n):
        key = (fill.account, fill.strategy)
        log = fills.setdefault(key, deque())
        log.append(fill)
        where[(fill.account, fill.fill_id)] = key
        if len(log) > window:
            old = log.popleft()
            where.pop((old.account, old.fill_id), None)
            waiting = pending.setdefault(key, [])
            waiting.append(old)
            if len(waiting) >= FOLD:
                waiting.clear()
    return sum(map(len, fills.values())), (fills, where, pending)


def row_bust_log(n: int, window: int) -> tuple[int, object]:
    """`BookLog`'s rows, fed as `BookLog.add` does (fills that left it are dropped, not folded)."""
    from collector.engine.bustlog import FOLD, BookLog

    log = BookLog(window)
    for fill in _validated(n):
        ring = log.ring((fill.account, fill.strategy))
        ring.add(fill)
        if len(ring) > window:
            ring.drop_oldest()
            if ring.leaving >= FOLD:
                ring.take_leaving()
    return sum(map(len, log.rings.values())), log


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def rollup_mb(pid: int) -> dict[str, float]:
    """Anonymous (heap, arrays) and file-backed (mapped libraries) parts of the RSS, in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])
    anonymous = int(fields["Anonymous"].split()[0]) / 1024
    return {"anonymous": round(anonymous, 1), "file": round(int(fields["Rss"].split()[0]) / 1024 - anonymous, 1)}


def budget_stages(fills: int) -> list[tuple[str, float]]:
    """RSS (MB) after each part `stratmon run` builds, in this (fresh) process: run with --budget."""
    import threading

    stages = [("interpreter and this benchmark's imports", rss_mb(os.getpid()))]
    from collector.config import CapitalConfig, IngestConfig, MetricsConfig, RunConfig
    from collector.engine.engine import Engine
    from collector.model import FillValidator
    from collector.run import collector  # noqa: F401 - its imports are what is measured
    from collector.sources.base import Batch, Outlet

    stages.append(("imports of collector.run (numba, llvmlite, pydantic, …)", rss_mb(os.getpid())))
    validator, now = FillValidator(5.0), time.time_ns()

    def batches(seed: int, size: int) -> Iterator[list[Fill]]:  # decoded as the file tail does: a batch at a time
        records = synthetic_fills(fills, seed=seed, start_ns=now - 30 * 86_400 * 10**9, step_ns=100_000)
        while chunk := [validator.validate(record, now) for record in itertools.islice(records, size)]:
            yield chunk

    capital, window = CapitalConfig(), IngestConfig().dedupe_window
    engine = Engine(capital.accounts, capital.default, MetricsConfig().day_basis, IngestConfig().bust_window)
    stream = batches(7, BATCH)
    engine.on_events(next(stream))
    stages.append(("compiled kernel loaded (the first batch)", rss_mb(os.getpid())))
    with tempfile.TemporaryDirectory(prefix="stratmon-budget-") as tmp:
        seen = SeenIds(Path(tmp), window)
        seen.restore(None)
        stages.append((f"duplicate-id window of {window:,} ids (ingest.dedupe_window)", rss_mb(os.getpid())))
        for batch in stream:
            engine.on_events(batch)
        books = len(engine.log.rings) if engine.log is not None else 0
        stages.append((f"engine after {fills:,} fills (its bust log: {books} books' last fills)", rss_mb(os.getpid())))
        outlet = Outlet(RunConfig().queue_batches, threading.Event())
        for batch in batches(8, EVENTS_PER_BATCH):
            if not outlet.offer(Batch("file", list(batch))):
                break
        stages.append((f"a full queue ({outlet.depth()} batches of fills)", rss_mb(os.getpid())))
        seen.close()
    return stages


def budget(fills: int, say: Callable[[str], None]) -> list[tuple[str, float]]:
    """`budget_stages` in a fresh interpreter (this one has imported and allocated other things), after a
    small one that compiles the kernel if its cache is stale (compiling costs RSS a cached run never pays)."""
    for count in (BATCH, fills):
        command = [sys.executable, __file__, "--budget", str(count)]
        out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    stages: list[tuple[str, float]] = [(str(name), float(mb)) for name, mb in json.loads(out)]
    previous = 0.0
    for name, mb in stages:
        say(f"  {mb:>7.1f} MB  (+{mb - previous:>6.1f})  {name}")
        previous = mb
    return stages


def stream_run(
    workdir: Path, fills: int, sample_s: float, say: Callable[[str], None]
) -> tuple[list[tuple[float, int, float]], dict[str, float]]:
    """(seconds, fills processed, RSS MB) samples of `stratmon run` over a file of `fills` fills, and the
    anonymous/file-backed split of its RSS at the last sample."""
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
                "sources": [{"type": "file", "paths": [str(path)]}],  # default batch_lines, like a user
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
    split: dict[str, float] = {}
    session, started = requests.Session(), time.monotonic()
    try:
        while process.poll() is None:
            answer = session.get(
                f"{influx}/query", params={"db": "memory", "q": "SELECT last(fills_in) FROM collector"}
            ).json()
            series = answer["results"][0].get("series") if answer.get("results") else None
            done = int(series[0]["values"][0][1]) if series else 0
            samples.append((time.monotonic() - started, done, rss_mb(process.pid)))
            split = rollup_mb(process.pid)
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
    return samples, split


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
    parser.add_argument(
        "--bust-fills", type=int, default=150_000, help="fills through the bust log (default 150k; 0: skip)"
    )
    parser.add_argument("--sample", type=float, default=2.0, help="seconds between RSS samples")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--budget-fills", type=int, default=150_000, help="fills through the engine for the RSS budget (0: skip)"
    )
    parser.add_argument("--budget", type=int, help=argparse.SUPPRESS)  # internal: the budget's fresh process
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed benchmark still stops its run and influxd
    if args.budget is not None:
        print(json.dumps(budget_stages(args.budget)))
        return 0
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
        if args.bust_fills:
            from collector.config import IngestConfig

            window = IngestConfig().bust_window
            say(f"bust-log memory, {args.bust_fills:,} fills, last {window:,} per book (tracemalloc):")
            for name, feed in [("bust_log_baseline", object_bust_log), ("bust_log_rows", row_bust_log)]:
                size, built = traced(lambda feed=feed: feed(args.bust_fills, window))  # type: ignore[misc]
                remembered, kept = cast(tuple[int, object], built)
                row = report[name] = {"fills": remembered, "bytes_per_fill": round(size / remembered, 1)}
                ratio = row["bytes_per_fill"] / report["bust_log_baseline"]["bytes_per_fill"]
                say(f"  {name:<22} {row['bytes_per_fill']:>7.1f} B/fill of {remembered:,} ({ratio:.3f}× the baseline)")
                del kept
        if args.budget_fills:
            say("where stratmon run's RSS goes (a fresh process, part by part):")
            report["budget_mb"] = budget(args.budget_fills, say)
        if args.run_fills:
            (workdir / "run").mkdir()
            say(f"stratmon run, {args.run_fills:,} fills from a file — RSS over time:")
            samples, split = stream_run(workdir / "run", args.run_fills, args.sample, say)
            second = [(done, rss) for _, done, rss in samples if done >= args.run_fills / 2]
            half = [rss for _, rss in second]
            last = [rss for _, done, rss in samples if done >= args.run_fills * 3 / 4]
            mean = sum(half) / len(half)
            run = report["run"] = {
                "fills": args.run_fills,
                "seconds": round(samples[-1][0], 1),
                "peak_rss_mb": round(max(rss for *_, rss in samples), 1),
                "second_half_mean_rss_mb": round(mean, 1),
                "flat": all(abs(rss - mean) <= 0.1 * mean for rss in last),
                "growth_mb_per_million_fills": round(
                    (second[-1][1] - second[0][1]) / max(1, second[-1][0] - second[0][0]) * 1e6, 1
                ),
                "last_rss_split_mb": split,
                "samples": [(round(t, 1), done, round(rss, 1)) for t, done, rss in samples],
            }
            say(
                f"peak RSS {run['peak_rss_mb']:.0f} MB (target < 500 MB) over {run['seconds']:.0f} s; last quarter "
                f"{'flat' if run['flat'] else 'NOT flat'} (within ±10% of the second half's mean {mean:.0f} MB); "
                f"second half growth {run['growth_mb_per_million_fills']:+.1f} MB per million fills; at the end "
                f"{split['anonymous']:.0f} MB anonymous + {split['file']:.0f} MB mapped files (libllvmlite.so, …)"
            )
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
