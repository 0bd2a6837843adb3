"""Ingest benchmark: (a) bulk write of pre-serialized line protocol vs (b) `stratmon ingest` end to end.

Both run in one go against the same private influxd, each into a fresh database, with the
same points, batch size and write path, so b/a isolates what validation, decoding and
serialization cost on top of what InfluxDB itself takes.

    .venv/bin/python benchmarks/ingest.py [--fills 500000] [--batch-size 5000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from collector.model import NS, FillValidator
from collector.sources.synthetic import synthetic_fills, write_jsonl
from collector.store.influxd import LocalInfluxd
from collector.store.lineproto import UniqueTimestamps, fill_line
from collector.store.reader import Reader
from collector.store.transport import Endpoint, V1Transport, create_database


def serialize(path: Path) -> list[bytes]:
    """The exact lines `stratmon ingest` writes, built before the clock starts."""
    validator, stamps, now = FillValidator(), UniqueTimestamps(), time.time_ns()
    lines = []
    with open(path, "rb") as handle:
        for raw in handle:
            fill = validator.validate(orjson.loads(raw), now)
            series = f"{fill.account}|{fill.strategy}|{fill.symbol}|{fill.side}"
            lines.append(fill_line(fill, stamps.assign(series, fill.ts, fill.fill_id)).encode())
    return lines


def bulk_write(url: str, lines: list[bytes], batch_size: int) -> float:
    endpoint = Endpoint(url=url, database="bench_raw", gzip=False)
    create_database(endpoint)
    transport = V1Transport(endpoint)
    start = time.perf_counter()
    for i in range(0, len(lines), batch_size):
        transport.send(b"\n".join(lines[i : i + batch_size]))
    elapsed = time.perf_counter() - start
    transport.close()
    return elapsed


def cli_ingest(url: str, path: Path, batch_size: int, workdir: Path) -> tuple[float, dict[str, int]]:
    env = os.environ | {
        "STRATMON_INFLUX_URL": url,
        "STRATMON_INFLUX_DATABASE": "bench_ingest",
        "STRATMON_INFLUX_BATCH_SIZE": str(batch_size),
        "STRATMON_STATE_DIR": str(workdir / "state"),
        "STRATMON_SPOOL_DIR": str(workdir / "spool"),
        "STRATMON_INGEST_DEAD_LETTER": str(workdir / "dead.jsonl"),
    }
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "collector", "ingest", str(path), "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return time.perf_counter() - start, json.loads(done.stdout)


def count(url: str, database: str) -> int:
    reader = Reader(Endpoint(url=url, database=database, timeout=120))
    try:
        return int(reader.query("SELECT count(qty) FROM fills")["count"].iloc[0])
    finally:
        reader.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fills", type=int, default=500_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="stratmon-bench-") as tmp:
        workdir = Path(tmp)
        path = workdir / "fills.jsonl"
        write_jsonl(str(path), synthetic_fills(args.fills, seed=11, start_ns=time.time_ns() - 30 * 86_400 * NS))
        server = LocalInfluxd(workdir / "influxd")
        state = server.start()
        try:
            lines = serialize(path)
            raw_seconds = bulk_write(state.url, lines, args.batch_size)
            ingest_seconds, summary = cli_ingest(state.url, path, args.batch_size, workdir)
            stored = (count(state.url, "bench_raw"), count(state.url, "bench_ingest"))
        finally:
            server.stop()

    result = {
        "fills": args.fills,
        "batch_size": args.batch_size,
        "bulk_points_per_s": round(args.fills / raw_seconds),
        "ingest_fills_per_s": round(args.fills / ingest_seconds),
        "ratio": round(raw_seconds / ingest_seconds, 3),
        "stored_bulk": stored[0],
        "stored_ingest": stored[1],
        "ingest_summary": summary,
    }
    if stored != (args.fills, args.fills) or summary["written"] != args.fills:
        print(f"benchmark invalid: not every point was stored: {result}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        print(f"(a) bulk write, pre-serialized LP : {result['bulk_points_per_s']:>9,} points/s")
        print(f"(b) stratmon ingest, end to end   : {result['ingest_fills_per_s']:>9,} fills/s")
        print(f"ratio b/a                         : {result['ratio']:.2f}  (target >= 0.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
