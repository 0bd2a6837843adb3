"""Bus mode on the real 3-node JetStream cluster and a private influxd == one engine, for 1 … 4 partitions.

The router (`stratmon run` with bus:) tails a JSONL file of fills (with duplicates, which its intake drops);
workers and the aggregator run as their commands do. Every perf field of every book (workers) and aggregate
(aggregator) equals one Engine over the same fills; every fill is in InfluxDB exactly once with one engine's
realized PnL, and every series has perf points.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from collector.config import Settings
from collector.engine.engine import Engine
from collector.model import Fill, Mark
from collector.run.bus_aggregator import Aggregator, run_aggregator
from collector.run.bus_router import BusRouter
from collector.run.bus_worker import PartitionWorker, run_workers
from collector.store.reader import Reader
from tests.bus.natscluster import NatsCluster
from tests.bus.test_equivalence import assert_rows_equal, assert_series_equal, fresh, with_duplicates
from tests.engine.test_kernel_equals_reference import random_stream

_streams = itertools.count()
CAPITAL = {"A1": 2.5e6, "A3": 3e5}  # a config's capital is positive
BOUND = 90.0  # seconds before a stuck run fails instead of hanging


def fill_record(fill: Fill | Mark) -> dict[str, Any]:
    record = {name: getattr(fill, name) for name in fill.__slots__}
    return {k: v for k, v in record.items() if v is not None and k != "action"}


def write_jsonl(path: Path, fills: list[Fill | Mark]) -> None:
    with open(path, "w") as handle:
        handle.writelines(json.dumps(fill_record(fill)) + "\n" for fill in fills)


async def run_bus(
    settings: Settings, partitions: int, last: int
) -> tuple[BusRouter, list[PartitionWorker], Aggregator]:
    """Router, workers and aggregator until the aggregator applied global seq `last`; then a clean stop."""
    stopping, stop = threading.Event(), asyncio.Event()
    router = BusRouter(settings, stopping)
    live: list[Aggregator] = []
    routing = asyncio.create_task(router.run())
    working = asyncio.create_task(run_workers(settings, range(partitions), stop))
    aggregating = asyncio.create_task(run_aggregator(settings, stop, live.append))
    async with asyncio.timeout(BOUND):
        while not live or live[0].applied < last:
            for task in (routing, working, aggregating):
                if task.done():
                    task.result()  # a part that ended early failed: its error
            await asyncio.sleep(0.05)
        stopping.set()
        stop.set()
        await routing
        return router, await working, await aggregating


def bus_settings(settings: Settings, cluster: NatsCluster, path: Path, partitions: int, batch: int) -> Settings:
    data = settings.model_dump()
    data.update(
        sources=[{"type": "file", "paths": [str(path)], "batch_lines": batch}],
        bus={"kind": "jetstream", "urls": cluster.urls, "stream": f"EQ{next(_streams)}", "partitions": partitions},
        capital={"accounts": CAPITAL},
        run={"snapshot_interval": 0.3},
        jobs={"enabled": False},
        alerts={"enabled": False},
    )
    return Settings(**data)


def fills_stream(rng: random.Random, count: int) -> list[Fill | Mark]:
    """Fills only: a file source carries no marks (they come over HTTP); marks across partitions: test_equivalence."""
    stream = random_stream(rng, count, books=rng.choice([4, 6]), symbols=rng.choice([2, 5]))
    return with_duplicates(rng, [e for e in stream if type(e) is Fill])


def assert_equal_one_engine(
    events: list[Fill | Mark], workers: list[PartitionWorker], aggregator: Aggregator, reader: Reader, basis: str
) -> None:
    ref = Engine(CAPITAL, 1e6, basis)  # type: ignore[arg-type]
    result = ref.on_events(events)
    assert aggregator.aggregates is not None
    assert_rows_equal(aggregator.aggregates.engine, ref, {"strategy", "account", "portfolio"})
    books = {key for w in workers if w.books for key, s in w.books.engine.series.items() if s.fills}
    assert {key for key in books if key[0] == "book"} == {
        k for k, s in ref.series.items() if s.fills and k[0] == "book"
    }
    for worker in workers:
        assert worker.books is not None
        for key, series in worker.books.engine.series.items():
            if key[0] == "book" and series.fills:
                assert_series_equal(worker.books.engine, ref, key)
    stored = reader.query("SELECT fill_id, realized_pnl, account FROM fills")
    want = {(e.account, e.fill_id): pnl for e, pnl in zip(events, result.realized, strict=True) if type(e) is Fill}
    got = list(zip(stored["account"], stored["fill_id"], stored["realized_pnl"], strict=True))
    assert len(got) == len(want)  # every fill exactly once
    assert {(account, fill_id): pnl for account, fill_id, pnl in got} == want
    perf = reader.query('SELECT last(equity) AS equity FROM perf GROUP BY "level", "account", "strategy"')
    assert len(perf) == sum(1 for s in ref.series.values() if s.fills)


@pytest.mark.parametrize("partitions", [1, 2, 3, 4])
def test_bus_mode_equals_one_engine(
    partitions: int, nats_cluster: NatsCluster, settings: Settings, reader: Reader, tmp_path: Path
) -> None:
    rng = random.Random(100 + partitions)
    raw = fills_stream(rng, 600)
    path = tmp_path / "fills.jsonl"
    write_jsonl(path, raw)  # the router drops the duplicates as `run` does
    bust = raw[len(raw) // 2]
    assert type(bust) is Fill
    with open(path, "a") as handle:  # a bust: the single process's job, so a dead letter with the reason
        handle.write(json.dumps({"ts": bust.ts, "account": bust.account, "action": "cancel", "ref_fill_id": "0"}))
        handle.write("\n")
    config = bus_settings(settings, nats_cluster, path, partitions, rng.choice([17, 100]))
    events = fresh(raw)
    router, workers, aggregator = asyncio.run(run_bus(config, partitions, len(events) - 1))
    assert router.checker.rejected == 1
    assert "single-process mode" in config.ingest.dead_letter.read_text()
    assert_equal_one_engine(events, workers, aggregator, reader, config.metrics.day_basis)


def test_a_restart_continues_from_the_checkpoints(
    nats_cluster: NatsCluster, settings: Settings, reader: Reader, tmp_path: Path
) -> None:
    """Stop everything cleanly half way, append the rest, start again: workers, aggregator and router restore
    their checkpoints from the bus and the result still equals one engine (fills written once)."""
    rng = random.Random(7)
    raw = fills_stream(rng, 800)
    half = len(raw) // 2
    path = tmp_path / "fills.jsonl"
    write_jsonl(path, raw[:half])
    config = bus_settings(settings, nats_cluster, path, 3, 29)
    first = len(fresh(raw[:half]))
    asyncio.run(run_bus(config, 3, first - 1))
    with open(path, "a") as handle:
        handle.writelines(json.dumps(fill_record(fill)) + "\n" for fill in raw[half:])
    events = fresh(raw)
    router, workers, aggregator = asyncio.run(run_bus(config, 3, len(events) - 1))
    assert router.fills_in == len(events) - first  # the source resumed where the router's checkpoint said
    assert_equal_one_engine(events, workers, aggregator, reader, config.metrics.day_basis)
