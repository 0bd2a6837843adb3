"""Ingest benchmark: (b) `stratmon ingest` end to end ÷ (a) the bulk line-protocol ceiling of the same influxd.

(a) sends the exact lines `stratmon ingest` writes (realized PnL included), serialized before the
clock starts, in batches of the same size over one connection, one request at a time — the
writer's concurrency (one sender thread, one connection). (b) runs the CLI as a user does
(process start included) on the JSONL file. Each run writes to a freshly started private influxd
(its cost per point grows with the series it already holds); the pairs alternate (a b, b a, ...)
so drift from other load on the machine falls on both, and the ratio printed is the median of
the pairs. CPU seconds of influxd and of the ingest
process are printed too: on a shared machine they are steadier than wall time.

    .venv/bin/python benchmarks/ingest.py [--fills 500000] [--batch-size 5000] [--repeat 3] [--json]
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
from pathlib import Path

import orjson

from collector.engine.engine import Engine
from collector.model import NS, Fill, FillValidator
from collector.sources.synthetic import synthetic_fills, write_jsonl
from collector.store.fillkeys import FillKeys
from collector.store.influxd import LocalInfluxd
from collector.store.lineproto import UniqueTimestamps, fill_line
from collector.store.reader import Reader
from collector.store.transport import Endpoint, V1Transport, create_database

DATABASE = "stratmon"  # ingest's default database; each run has an influxd of its own


def serialize(path: Path) -> list[bytes]:
    """The exact lines `stratmon ingest` writes (same keys, same realized PnL), built before the clock starts."""
    validator, now = FillValidator(), time.time_ns()
    with open(path, "rb") as handle:
        fills: list[Fill] = [validator.validate(orjson.loads(raw), now) for raw in handle]
    realized = Engine(revalue=False).on_events(fills).realized
    stamps = FillKeys(UniqueTimestamps(), None).assign(fills)
    return [fill_line(f, ts, pnl).encode() for f, ts, pnl in zip(fills, stamps, realized, strict=True)]


def influxd_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bulk_write(url: str, lines: list[bytes], batch_size: int) -> float:
    endpoint = Endpoint(url=url, database=DATABASE, gzip=False)
    create_database(endpoint)
    transport = V1Transport(endpoint)
    start = time.perf_counter()
    for i in range(0, len(lines), batch_size):
        transport.send(b"\n".join(lines[i : i + batch_size]))
    elapsed = time.perf_counter() - start
    transport.close()
    return elapsed


def cli_ingest(url: str, path: Path, batch_size: int, workdir: Path) -> tuple[float, float, dict[str, int]]:
    """Wall seconds, CPU seconds (the CLI process's own, from wait4) and the --json summary of one run."""
    env = os.environ | {
        "STRATMON_INFLUX_URL": url,
        "STRATMON_INFLUX_DATABASE": DATABASE,
        "STRATMON_INFLUX_BATCH_SIZE": str(batch_size),
        "STRATMON_STATE_DIR": str(workdir / "state"),
        "STRATMON_SPOOL_DIR": str(workdir / "spool"),
        "STRATMON_INGEST_DEAD_LETTER": str(workdir / "dead.jsonl"),
    }
    with open(workdir / "ingest.err", "w+b") as errors:
        start = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "collector", "ingest", str(path), "--json"],
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
        )
        assert child.stdout is not None
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            errors.seek(0)
            raise RuntimeError(f"stratmon ingest exited {child.returncode}: {errors.read().decode()[-2000:]}")
    return elapsed, usage.ru_utime + usage.ru_stime, json.loads(out)


def startup_seconds() -> float:
    """What starting the CLI costs before it reads a line (interpreter + imports)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import collector.cli"], check=True)
    return time.perf_counter() - start


def count(url: str) -> int:
    reader = Reader(Endpoint(url=url, database=DATABASE, timeout=120))
    try:
        return int(reader.query("SELECT count(qty) FROM fills")["count"].iloc[0])
    finally:
        reader.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fills", type=int, default=500_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3, help="alternating (a, b) pairs; the median ratio is printed")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    pairs: list[dict[str, float]] = []
    summaries: list[dict[str, int]] = []
    stored: list[int] = []
    with tempfile.TemporaryDirectory(prefix="stratmon-bench-") as tmp:
        workdir = Path(tmp)
        path = workdir / "fills.jsonl"
        write_jsonl(str(path), synthetic_fills(args.fills, seed=11, start_ns=time.time_ns() - 30 * 86_400 * NS))
        lines = serialize(path)
        startup = startup_seconds()
        for run in range(args.repeat):
            pair: dict[str, float] = {}
            for phase in ("bulk", "ingest") if run % 2 == 0 else ("ingest", "bulk"):
                # a fresh influxd for each run: its cost per point grows with the series it already holds
                server = LocalInfluxd(workdir / f"influxd-{phase}-{run}")
                state = server.start()
                try:
                    server_cpu = influxd_cpu(state.pid)
                    if phase == "bulk":
                        pair["bulk_s"] = bulk_write(state.url, lines, args.batch_size)
                    else:
                        pair["ingest_s"], pair["ingest_cpu_s"], summary = cli_ingest(
                            state.url, path, args.batch_size, workdir
                        )
                        summaries.append(summary)
                    pair[f"{phase}_influxd_cpu_s"] = influxd_cpu(state.pid) - server_cpu
                    stored.append(count(state.url))
                finally:
                    server.stop()
            pairs.append(pair)

    ratios = [p["bulk_s"] / p["ingest_s"] for p in pairs]
    us = 1e6 / args.fills
    result = {
        "fills": args.fills,
        "batch_size": args.batch_size,
        "writer_connections": 1,
        "repeat": args.repeat,
        "bulk_points_per_s": round(args.fills / statistics.median(p["bulk_s"] for p in pairs)),
        "ingest_fills_per_s": round(args.fills / statistics.median(p["ingest_s"] for p in pairs)),
        "ratio": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
        "influxd_us_per_point_bulk": round(statistics.median(p["bulk_influxd_cpu_s"] for p in pairs) * us, 1),
        "influxd_us_per_point_ingest": round(statistics.median(p["ingest_influxd_cpu_s"] for p in pairs) * us, 1),
        "ingest_process_us_per_fill": round(statistics.median(p["ingest_cpu_s"] for p in pairs) * us, 1),
        "startup_s": round(startup, 2),
        "ingest_summary": summaries[0],
    }
    if any(n != args.fills for n in stored) or any(s["written"] != args.fills for s in summaries):
        print(f"benchmark invalid: not every point was stored: {stored} {summaries}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        print(f"(a) bulk write, pre-serialized LP : {result['bulk_points_per_s']:>9,} points/s (1 connection)")
        print(f"(b) stratmon ingest, end to end   : {result['ingest_fills_per_s']:>9,} fills/s")
        print(
            f"ratio b/a (median of {args.repeat} pairs)  : {result['ratio']:.2f}  {result['ratios']}  (target >= 0.85)"
        )
        print(
            f"CPU: influxd {result['influxd_us_per_point_bulk']} us/point in (a), "
            f"{result['influxd_us_per_point_ingest']} in (b); the ingest process {result['ingest_process_us_per_fill']}"
            f" us/fill; process start {result['startup_s']} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
