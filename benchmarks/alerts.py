"""Alert latency and the cost of evaluating rules.

1. Latency at a steady background load (default 1,000 fills/s through the HTTP intake) with the
   default rule set active plus one probe rule (critical, fast path, webhook to a local
   receiver). Every half second a probe book opens and closes a position at a large loss; the
   closing fill trips the probe rule. Measured from sending that fill to:
     (a) the `alerts` firing point being queryable in InfluxDB (polled every 10 ms),
     (b) the webhook notification arriving at the local receiver,
     (c) inside the collector: batch received → firing event (the `latency_ms` field).
2. Engine throughput on one core over the same simulated stream, rules off vs on (ratio).

    .venv/bin/python benchmarks/alerts.py [--rate 1000] [--seconds 60] [--fills 300000] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.latency import TOKEN, Fills, start_collector  # noqa: E402
from collector.alerts.evaluator import AlertEngine  # noqa: E402
from collector.alerts.rules import load_rules  # noqa: E402
from collector.config import SimulatorSourceConfig  # noqa: E402
from collector.engine.engine import Engine  # noqa: E402
from collector.model import NS, Fill, Mark  # noqa: E402
from collector.sources.simulator import Simulation  # noqa: E402
from collector.store.influxd import LocalInfluxd  # noqa: E402

PROBE_EVERY_S = 0.5
PROBE_RULE = {
    "name": "probe-loss",
    "level": "book",
    "kind": "threshold",
    "metric": "realized_pnl",
    "op": "lt",
    "value": -1000,
    "filter": {"strategies": ["probe_*"]},
    "severity": "critical",
    "notify": ["probe"],
    "fast_path": True,
}


class Receiver:
    """A local webhook receiver that records when each probe strategy's notification arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                now = time.perf_counter()
                for alert in body["alerts"]:
                    receiver.arrived.setdefault(alert["strategy"], now)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    array = np.array(values)
    return {"n": len(values), "p50": float(np.percentile(array, 50)), "p99": float(np.percentile(array, 99))}


def measure_latency(rate: float, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="stratmon-alerts-") as tmp:
        workdir = Path(tmp)
        rules = yaml.safe_load((ROOT / "rules" / "alerts.yaml").read_text())
        rules["notifiers"]["probe"] = {"type": "webhook", "url_env": "BENCH_PROBE_URL"}
        rules["defaults"]["group_interval"] = "0s"  # measure delivery, not the grouping window…
        rules["rate_limit"] = {"count": 1_000_000, "per": "1s"}  # …nor the rate limit
        rules["rules"].append(PROBE_RULE)
        rules_file = workdir / "alerts.yaml"
        rules_file.write_text(yaml.safe_dump(rules))
        receiver = Receiver()
        server = LocalInfluxd(workdir / "influxd")
        influx = server.start().url
        process, intake = start_collector(
            workdir,
            influx,
            "bench",
            alerts={"enabled": True, "rules": str(rules_file)},
            env_extra={"BENCH_PROBE_URL": receiver.url},
        )
        try:
            return _drive(intake, influx, receiver, rate, seconds)
        finally:
            process.terminate()
            process.wait(60)
            server.stop()
            receiver.server.shutdown()


def _drive(intake: str, influx: str, receiver: Receiver, rate: float, seconds: float) -> dict[str, Any]:
    session = requests.Session()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    fills = Fills(7)
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    stop = threading.Event()

    def poll() -> None:
        poller = requests.Session()
        statement = "SELECT last(active) FROM alerts WHERE rule = 'probe-loss' GROUP BY strategy"
        while not stop.is_set():
            answer = poller.get(f"{influx}/query", params={"db": "bench", "q": statement}).json()
            now = time.perf_counter()
            for series in answer["results"][0].get("series", []):
                seen.setdefault(series["tags"]["strategy"], now)
            time.sleep(0.01)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    start = time.perf_counter()
    next_send, next_probe, owed, probe = start, start + 1.0, 0.0, 0
    while time.perf_counter() - start < seconds:
        owed += rate * 0.01
        count = int(owed)
        owed -= count
        if count:
            session.post(f"{intake}/v1/fills", data=fills.batch(count), headers=headers).raise_for_status()
        if time.perf_counter() >= next_probe:
            probe += 1
            name = f"probe_{probe:04d}"
            opening, closing = _probe_fills(name)
            session.post(f"{intake}/v1/fills", data=orjson.dumps([opening]), headers=headers).raise_for_status()
            sent[name] = time.perf_counter()
            session.post(f"{intake}/v1/fills", data=orjson.dumps([closing]), headers=headers).raise_for_status()
            next_probe += PROBE_EVERY_S
        next_send += 0.01
        time.sleep(max(0.0, next_send - time.perf_counter()))
    time.sleep(2)
    stop.set()
    poller.join()
    internal = requests.get(
        f"{influx}/query",
        params={"db": "bench", "q": "SELECT latency_ms FROM alerts WHERE rule = 'probe-loss' AND state = 'firing'"},
    ).json()
    inside = [row[1] for series in internal["results"][0].get("series", []) for row in series["values"]]
    return {
        "rate": rate,
        "seconds": seconds,
        "probes": len(sent),
        "queryable_ms": _percentiles([(seen[n] - t) * 1000 for n, t in sent.items() if n in seen]),
        "notified_ms": _percentiles(
            [(receiver.arrived[n] - t) * 1000 for n, t in sent.items() if n in receiver.arrived]
        ),
        "in_collector_ms": _percentiles(inside),
        "missed": sum(1 for n in sent if n not in seen),
    }


def _probe_fills(strategy: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Buy 100 at 100, sell 100 at 80: −2,000 realized, past the probe rule's −1,000."""
    now = time.time_ns()
    base = {"account": "PROBE", "strategy": strategy, "symbol": "PRB", "qty": 100.0}
    return (
        base | {"ts": now, "side": "buy", "price": 100.0, "fill_id": f"{strategy}-o"},
        base | {"ts": now + 1000, "side": "sell", "price": 80.0, "fill_id": f"{strategy}-c"},
    )


TICK_EVERY = 20  # batches (~340 fills) between ticks: more often than the collector's 250 ms flush at these rates


def measure_throughput(fills: int = 300_000, repeats: int = 3) -> dict[str, float]:
    """Engine fills/s over one simulated stream, without and with the default rules (one core, no I/O).

    Both runs take the collector's calls: `Engine.on_events` per batch (a simulator step of 120 s,
    as the source delivers it), the rules' `on_batch` after it and `on_tick` every few batches.
    """
    simulation = Simulation(SimulatorSourceConfig(type="simulator", seed=3), 1_700_000_000 * NS)
    batches: list[list[Fill | Mark]] = []
    generated = 0
    while generated < fills:
        step = simulation.step(120.0)
        batches.append(step)
        generated += sum(1 for e in step if isinstance(e, Fill))
    rules = load_rules(ROOT / "rules" / "alerts.yaml")
    gc.freeze()  # the pre-built stream stays out of the GC's scans in both runs (a live stream is transient)

    def run(with_rules: bool, stream: list[list[Fill | Mark]]) -> float:
        engine = Engine()
        alerts = AlertEngine(rules, engine, log_events=False) if with_rules else None
        started = time.perf_counter()
        for n, batch in enumerate(stream):
            clock = engine.clock_ns
            result = engine.on_events(batch)
            if alerts is not None:
                alerts.on_batch(batch, result, clock)
                if n % TICK_EVERY == 0:
                    alerts.on_tick(engine.take_changed(), engine.clock_ns)
            elif n % TICK_EVERY == 0:
                engine.take_changed()
        return sum(1 for batch in stream for e in batch if isinstance(e, Fill)) / (time.perf_counter() - started)

    run(False, batches[:200])  # warm-up: JIT compilation and caches are not part of either figure
    run(True, batches[:200])
    offs, ons = [], []
    for _ in range(repeats):  # alternated, best of each: a busy machine slows single runs, not the best one
        offs.append(run(False, batches))
        ons.append(run(True, batches))
    off, on = max(offs), max(ons)
    return {
        "fills": float(generated),
        "rules_off_fills_per_s": off,
        "rules_on_fills_per_s": on,
        "on_over_off": on / off,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fills", type=int, default=300_000, help="fills in the throughput stream")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.getLogger("collector.alerts").setLevel(logging.ERROR)  # the simulated desk trips rules constantly
    throughput = measure_throughput(args.fills)
    latency = measure_latency(args.rate, args.seconds)
    if args.json:
        print(json.dumps({"latency": latency, "throughput": throughput}))
        return 0
    for label, key in (
        ("fill sent → alerts point queryable", "queryable_ms"),
        ("fill sent → webhook received", "notified_ms"),
        ("inside the collector (received → firing event)", "in_collector_ms"),
    ):
        figures = latency[key]
        if figures["n"]:
            print(f"{label}: p50 {figures['p50']:.1f} ms, p99 {figures['p99']:.1f} ms (n={figures['n']})")
    load = f"background {args.rate:g} fills/s for {args.seconds:g} s"
    print(f"probes {latency['probes']}, missed {latency['missed']}, {load}")
    print(
        f"engine alone {throughput['rules_off_fills_per_s']:,.0f} fills/s; with the default rules "
        f"{throughput['rules_on_fills_per_s']:,.0f} fills/s; ratio {throughput['on_over_off']:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
