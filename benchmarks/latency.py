"""End-to-end latency: fill received by the HTTP intake → its effect queryable in `perf` in InfluxDB.

Starts a private influxd and `stratmon run` (HTTP source) as a separate process, sends fills at a
steady rate from one client (so the intake sees them in order), and polls InfluxDB for the
portfolio series' cumulative `fills`: request k is visible once that count reaches the number
of fills sent up to and including k. Latency = first poll that sees it − the moment it was sent,
so the poll interval (10 ms) is included, never hidden.

Baseline, measured in the same run: one line written straight to InfluxDB's /write and polled
the same way until it is queryable — the floor any pipeline on this InfluxDB has.

Measured in one run: the steady rate (target p99 ≤ 100 ms at 1,000 fills/s), a burst (target p99
≤ 1 s at 20,000 fills/s), the steady rate again with the flush fixed at `run.flush_interval`
(`flush_min_interval` = `flush_interval`: how the collector flushed before it became adaptive),
then the highest sustained rate whose p99 stays ≤ 1 s, searched by doubling the rate.

    .venv/bin/python benchmarks/latency.py [--rate 1000] [--seconds 60] [--burst-rate 20000]
        [--burst-seconds 20] [--fixed-seconds 20] [--json] [--no-search]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector.store.influxd import LocalInfluxd  # noqa: E402

TOKEN = "bench-token-" + os.urandom(8).hex()
POLL_S = 0.01
SEND_EVERY_S = 0.01
TARGET_P99_MS = 1000.0  # under load (the search, the burst)
STEADY_TARGET_P99_MS = 100.0
WARMUP_S = 3.0


@dataclass
class Result:
    rate: float
    achieved: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    busy: int  # 503 answers (backpressure)

    @property
    def ok(self) -> bool:
        return self.p99_ms <= TARGET_P99_MS and self.achieved >= 0.95 * self.rate


def _weighted(values: list[float], weights: list[int], q: float) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(np.asarray(weights, dtype=float)[order])
    return float(np.asarray(values)[order][np.searchsorted(cumulative, q * cumulative[-1])])


class Fills:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = 0
        self.prices = [self.rng.uniform(20, 500) for _ in range(24)]

    def batch(self, count: int) -> bytes:
        rng, now, out = self.rng, time.time_ns(), []
        for _ in range(count):
            self.n += 1
            sym = rng.randrange(24)
            self.prices[sym] *= 1 + rng.gauss(0, 0.0005)
            out.append(
                {
                    "ts": now,
                    "account": f"ACC{rng.randrange(4) + 1:02d}",
                    "strategy": f"strat_{rng.randrange(31) + 1:02d}",
                    "symbol": f"SYM{sym:02d}",
                    "side": "buy" if rng.random() < 0.5 else "sell",
                    "qty": float(rng.randint(1, 20)),
                    "price": round(self.prices[sym], 4),
                    "fill_id": f"b{self.n}",
                    "fee": 0.5,
                }
            )
        return orjson.dumps(out)


class Poller(threading.Thread):
    """Reads the portfolio's cumulative fill count every POLL_S; remembers when each count was first seen."""

    def __init__(self, url: str, database: str) -> None:
        super().__init__(daemon=True)
        self.url, self.database = url, database
        self.seen: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def count(self, session: requests.Session) -> int:
        answer = session.get(
            f"{self.url}/query",
            params={"db": self.database, "q": "SELECT last(fills) FROM perf WHERE level = 'portfolio'"},
        ).json()
        series = answer["results"][0].get("series")
        return int(series[0]["values"][0][1]) if series else 0

    def run(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            now, value = time.perf_counter(), self.count(session)
            if not self.seen or value > self.seen[-1][1]:
                self.seen.append((now, value))
            time.sleep(POLL_S)

    def visible_at(self, target: int) -> float | None:
        for when, value in self.seen:
            if value >= target:
                return when
        return None


def measure(intake: str, influx: str, database: str, rate: float, seconds: float, fills: Fills) -> Result:
    poller = Poller(influx, database)
    base = poller.count(requests.Session())
    poller.start()
    session = requests.Session()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    sent: list[tuple[float, int, int]] = []  # (sent at, cumulative count after, fills in request)
    total, busy, owed = base, 0, 0.0
    start = time.perf_counter()
    next_send = start
    while (now := time.perf_counter()) - start < seconds:
        owed += rate * SEND_EVERY_S
        count = int(owed)
        owed -= count
        if count:
            body = fills.batch(count)
            answer = session.post(f"{intake}/v1/fills", data=body, headers=headers)
            if answer.status_code == 503:
                busy += 1
            else:
                answer.raise_for_status()
                total += count
                sent.append((now, total, count))
        next_send += SEND_EVERY_S
        time.sleep(max(0.0, next_send - time.perf_counter()))
    elapsed = time.perf_counter() - start
    deadline = time.perf_counter() + 30
    while poller.visible_at(total) is None and time.perf_counter() < deadline:
        time.sleep(0.05)
    poller.stop.set()
    poller.join()
    latencies, weights = [], []
    for when, cumulative, count in sent:
        if when - start < WARMUP_S:
            continue
        visible = poller.visible_at(cumulative)
        latencies.append(((visible if visible is not None else float("inf")) - when) * 1000)
        weights.append(count)
    achieved = (total - base) / elapsed
    return Result(
        rate,
        achieved,
        _weighted(latencies, weights, 0.5),
        _weighted(latencies, weights, 0.99),
        max(latencies),
        busy,
    )


def baseline(influx: str, database: str, samples: int = 200) -> tuple[float, float]:
    """p50/p99 ms of: one point POSTed to /write, polled every POLL_S until a query returns it."""
    session = requests.Session()
    session.post(f"{influx}/query", params={"q": f"CREATE DATABASE {database}_floor"})
    values = []
    for i in range(samples):
        sent = time.perf_counter()
        session.post(f"{influx}/write", params={"db": f"{database}_floor"}, data=f"probe value={i}i")
        while True:
            answer = session.get(
                f"{influx}/query", params={"db": f"{database}_floor", "q": "SELECT last(value) FROM probe"}
            ).json()
            series = answer["results"][0].get("series")
            if series and series[0]["values"][0][1] == i:
                break
            time.sleep(POLL_S)
        values.append((time.perf_counter() - sent) * 1000)
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def start_collector(
    workdir: Path,
    influx: str,
    database: str,
    alerts: dict[str, object] | None = None,
    env_extra: dict[str, str] | None = None,
    run: dict[str, object] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """`stratmon run` with an HTTP source in a child process; returns it and the intake URL once ready."""
    port = _free_port()
    config = workdir / "stratmon.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(workdir / "state"),
                "influx": {"url": influx, "database": database},
                "spool": {"dir": str(workdir / "spool")},
                "ingest": {"dead_letter": str(workdir / "dead.jsonl")},
                "sources": [{"type": "http", "port": port, "max_records": 100_000, "max_body_bytes": 64 << 20}],
                "alerts": alerts or {"enabled": True, "rules": str(ROOT / "rules" / "alerts.yaml")},
                "run": run or {},
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATMON_")} | {"STRATMON_HTTP_TOKEN": TOKEN}
    env |= env_extra or {}
    process = subprocess.Popen(
        [sys.executable, "-m", "collector", "run", "--config", str(config), "--log-level", "ERROR"],
        env=env,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                return process, url
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise SystemExit("stratmon run did not become ready")
        time.sleep(0.1)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000.0, help="fills per second (default 1000)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the main run (default 60)")
    parser.add_argument("--burst-rate", type=float, default=20_000.0, help="fills per second of the burst")
    parser.add_argument("--burst-seconds", type=float, default=20.0, help="length of the burst")
    parser.add_argument("--fixed-seconds", type=float, default=20.0, help="steady rate, fixed flush (0: skip)")
    parser.add_argument("--search-seconds", type=float, default=15.0, help="length of each search step")
    parser.add_argument("--no-search", action="store_true", help="skip the highest-sustained-rate search")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stratmon-latency-") as tmp:
        workdir = Path(tmp)
        server = LocalInfluxd(workdir / "influxd")
        influx = server.start().url
        process, intake = start_collector(workdir, influx, "bench")
        try:
            floor = baseline(influx, "bench")
            fills = Fills(1)
            main_result = measure(intake, influx, "bench", args.rate, args.seconds, fills)
            burst = measure(intake, influx, "bench", args.burst_rate, args.burst_seconds, fills)
            search: list[Result] = []
            if not args.no_search:
                good, rate = args.rate, args.rate * 2
                while True:  # double until p99 goes over 1 s, then bisect twice
                    step = measure(intake, influx, "bench", rate, args.search_seconds, fills)
                    search.append(step)
                    if not step.ok:
                        break
                    good, rate = rate, rate * 2
                bad = rate
                for _ in range(2):
                    rate = (good + bad) / 2
                    step = measure(intake, influx, "bench", rate, args.search_seconds, fills)
                    search.append(step)
                    good, bad = (rate, bad) if step.ok else (good, rate)
        finally:
            process.terminate()
            process.wait(60)
        fixed = None
        if args.fixed_seconds > 0:  # a second collector, its own database, the same influxd
            (workdir / "fixed").mkdir()
            interval = 0.25
            process, intake = start_collector(
                workdir / "fixed", influx, "fixed", run={"flush_interval": interval, "flush_min_interval": interval}
            )
            try:
                fixed = measure(intake, influx, "fixed", args.rate, args.fixed_seconds, Fills(2))
            finally:
                process.terminate()
                process.wait(60)
        server.stop()
    passing = [r.rate for r in [main_result, *search] if r.ok]
    report = {
        "rate": args.rate,
        "seconds": args.seconds,
        "achieved_fills_per_s": round(main_result.achieved, 1),
        "p50_ms": round(main_result.p50_ms, 1),
        "p99_ms": round(main_result.p99_ms, 1),
        "max_ms": round(main_result.max_ms, 1),
        "busy_503": main_result.busy,
        "baseline_p50_ms": round(floor[0], 1),
        "baseline_p99_ms": round(floor[1], 1),
        "p99_vs_baseline": round(main_result.p99_ms / floor[1], 1),
        "steady_target_met": main_result.p99_ms <= STEADY_TARGET_P99_MS,
        "burst": {
            "rate": args.burst_rate,
            "achieved": round(burst.achieved, 1),
            "p50_ms": round(burst.p50_ms, 1),
            "p99_ms": round(burst.p99_ms, 1),
            "max_ms": round(burst.max_ms, 1),
            "busy_503": burst.busy,
            "target_met": burst.ok,
        },
        "fixed_flush": None
        if fixed is None
        else {"p50_ms": round(fixed.p50_ms, 1), "p99_ms": round(fixed.p99_ms, 1), "achieved": round(fixed.achieved, 1)},
        "search": [
            {
                "rate": r.rate,
                "achieved": round(r.achieved, 1),
                "p50_ms": round(r.p50_ms, 1),
                "p99_ms": round(r.p99_ms, 1),
            }
            for r in search
        ],
        "max_rate_p99_under_1s": max(passing) if passing else None,
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"baseline (direct /write → queryable): p50 {floor[0]:.1f} ms, p99 {floor[1]:.1f} ms")
    print(
        f"stratmon at {args.rate:g} fills/s for {args.seconds:g} s (achieved {main_result.achieved:.0f}/s): "
        f"p50 {main_result.p50_ms:.0f} ms, p99 {main_result.p99_ms:.0f} ms, max {main_result.max_ms:.0f} ms, "
        f"{main_result.busy} × 503 — p99 is {report['p99_vs_baseline']}× the baseline p99 "
        f"(target ≤ {STEADY_TARGET_P99_MS:g} ms: {'met' if report['steady_target_met'] else 'NOT met'})"
    )
    if fixed is not None:
        print(
            f"  same rate, flush fixed at 250 ms (before adaptive flushing): p50 {fixed.p50_ms:.0f} ms, "
            f"p99 {fixed.p99_ms:.0f} ms — adaptive p99 is {main_result.p99_ms / fixed.p99_ms:.2f}× of it"
        )
    print(
        f"burst at {args.burst_rate:g} fills/s for {args.burst_seconds:g} s (achieved {burst.achieved:.0f}/s): "
        f"p50 {burst.p50_ms:.0f} ms, p99 {burst.p99_ms:.0f} ms, max {burst.max_ms:.0f} ms, {burst.busy} × 503 "
        f"(target p99 ≤ {TARGET_P99_MS:g} ms at ≥ 95% of the rate: {'met' if burst.ok else 'NOT met'})"
    )
    for step in search:
        verdict = "ok" if step.ok else "over"
        figures = f"p50 {step.p50_ms:.0f} ms, p99 {step.p99_ms:.0f} ms"
        print(f"  {step.rate:>8.0f}/s: achieved {step.achieved:.0f}/s, {figures}  {verdict}")
    print(f"highest sustained rate with p99 ≤ 1 s: {report['max_rate_p99_under_1s']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
