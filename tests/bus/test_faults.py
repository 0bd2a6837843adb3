"""SIGKILL mid-run, over the real 3-node cluster: a worker, the stream's leader and the aggregator.

The bus-mode processes run as the CLI starts them (tests/bus/deployment.py) on the session's NATS cluster
and influxd; the desk stream is appended to the router's file in pieces while the faults happen:
* a worker is killed — a new worker on the same partitions takes them over through the lease (started
  again, as a supervisor would, until the dead owner's lease has expired) and resumes from the dead one's
  checkpoint;
* the node leading the stream is killed — the cluster elects another, publishes and reads resume; the
  node is restarted later and catches up;
* the aggregator is killed and started again (likewise) — it resumes from its checkpoint.
Afterwards every fill is in InfluxDB exactly once with the realized PnL of a clean single-process run,
and the last perf row of every series (books, strategies, accounts, portfolio) equals that run's.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from benchmarks.engine import stream
from collector.model import Fill, Mark
from collector.store.influxd import InfluxdState
from tests.bus.deployment import Deployment, differences
from tests.bus.natscluster import NatsCluster

pytestmark = pytest.mark.slow

FILLS = 12_000
PIECES = 24
STREAM = "FAULTS"
TIMEOUT = 300.0


def _pieces(events: list[Fill | Mark]) -> list[list[Fill | Mark]]:
    size = -(-len(events) // PIECES)
    return [events[i : i + size] for i in range(0, len(events), size)]


def _fills(events: list[Fill | Mark]) -> int:
    return sum(1 for event in events if type(event) is Fill)


def _single(root: Path, influx: InfluxdState, database: str, events: list[Fill | Mark]) -> Deployment:
    """The clean run: one `stratmon run`, no bus, the whole stream in one go (stopped, rows readable)."""
    world = Deployment(root, influx, database, None)
    try:
        world.start("collector", "run")
        world.feed(events)
        world.wait(lambda: world.booked() >= FILLS and world.stored() >= FILLS, TIMEOUT, "every fill")
        world.settle()
    finally:
        world.stop()
    return world


def test_sigkill_of_a_worker_the_stream_leader_and_the_aggregator_loses_and_doubles_nothing(
    nats_cluster: NatsCluster, influxd: InfluxdState, database: str, tmp_path: Path
) -> None:
    events: list[Fill | Mark] = list(stream(FILLS, seed=16))  # a file carries fills only (marks: over HTTP)
    want = _single(tmp_path / "single", influxd, f"{database}_single", events)
    want_rows, want_fills = want.rows(), want.fills()
    assert len(want_fills) == FILLS

    bus = {"kind": "jetstream", "urls": nats_cluster.urls, "stream": STREAM, "partitions": 3, "lease_ttl": 20.0}
    world = Deployment(tmp_path / "bus", influxd, f"{database}_bus", bus)
    pieces = _pieces(events)
    fed = 0

    def feed_until(share: float) -> None:
        """Append pieces until `share` of the stream is in the file, then wait until the aggregator has it."""
        nonlocal fed
        while fed < share * len(pieces):
            feed_next(0.2)
        booked = sum(map(_fills, pieces[:fed]))
        world.wait(lambda: world.booked() >= booked, TIMEOUT, f"{booked} fills booked")

    def feed_next(pause: float) -> None:
        """Append the next piece and give the processes `pause` seconds on it: a kill then hits them busy."""
        nonlocal fed
        world.feed(pieces[fed])
        fed += 1
        time.sleep(pause)

    try:
        victim = world.start_worker(0, 1)
        world.start_worker(2, 2)
        world.start_aggregator()
        world.start_router()
        feed_until(0.3)
        feed_next(0.5)
        world.kill(victim)
        feed_next(0.0)  # while nobody holds partitions 0-1
        world.take_over("worker-0-1-again", "worker", "--partitions", "0-1")
        feed_until(0.5)

        leader = nats_cluster.leader(STREAM)
        feed_next(0.1)
        nats_cluster.kill(leader)  # the router is publishing, the workers reading
        feed_until(0.7)
        nats_cluster.start(leader)

        feed_next(0.5)
        world.kill("aggregator")
        world.take_over("aggregator", "aggregate")
        feed_until(1.0)
        world.wait(lambda: world.stored() >= FILLS, TIMEOUT, "every fill stored")
        world.settle()
    finally:
        world.stop()

    got = world.fills()
    assert got.keys() == want_fills.keys()
    assert [fid for fid, (count, _) in got.items() if count != 1] == []  # exactly once
    assert [fid for fid, (_, pnl) in got.items() if pnl != want_fills[fid][1]] == []
    rows = world.rows()
    assert sum(1 for key in rows if key[0] == "book") == sum(1 for key in want_rows if key[0] == "book")
    assert differences(rows, want_rows) == []
