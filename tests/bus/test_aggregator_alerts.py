"""The aggregator's alert rules see what one engine's see: slippage, round-trip and loss-streak rules above book level.

The aggregator hands the rules each applied stretch as a batch (records as fills of their positions, with
their slippage and round trips); the transitions — rule, series, state and event time — equal those of one
Engine fed the same stream in batches.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from collector.alerts.evaluator import AlertEngine, AlertEvent
from collector.alerts.rules import load_rules
from collector.bus.aggregator import Aggregates
from collector.bus.records import PART_DECODER, PART_ENCODER, RECORDS_DECODER
from collector.bus.router import Router
from collector.bus.worker import PartitionBooks
from collector.engine.partition import BookEngine
from tests.bus.test_equivalence import engine, fresh
from tests.engine.test_kernel_equals_reference import random_stream

RULES = [
    {"name": "s-slip", "level": "strategy", "kind": "slippage_anomaly", "z": 1.5, "window": 50, "min_samples": 10},
    {"name": "p-slip", "level": "portfolio", "kind": "slippage_anomaly", "z": 1.5, "window": 50, "min_samples": 10},
    {"name": "s-cusum", "level": "strategy", "kind": "degradation", "method": "cusum", "warmup": 10, "slack": 0.1,
     "threshold": 1},
    {"name": "a-streak", "level": "account", "kind": "loss_streak", "probability": 0.2},
]  # fmt: skip
BATCH = 50


def transitions(events: list[AlertEvent]) -> list[tuple[str, str, str, str, str, int]]:
    return sorted((e.rule.name, e.level, e.account, e.strategy, e.state, e.ts_ns) for e in events)


@pytest.mark.parametrize("seed", range(3))
def test_aggregator_rules_fire_as_one_engines(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(yaml.safe_dump({"rules": [dict(rule, severity="warning") for rule in RULES]}))
    rules = load_rules(str(path))
    rng = random.Random(seed)
    events = fresh(random_stream(rng, 3000, books=6, symbols=4))

    one = engine("trading")
    one_rules = AlertEngine(rules, one, log_events=False)
    want: list[AlertEvent] = []
    for i in range(0, len(events), BATCH):
        clock = one.clock_ns
        want += one_rules.on_batch(events[i : i + BATCH], one.on_events(events[i : i + BATCH]), clock)

    partitions = 3
    router = Router(partitions, 1_000_000)
    workers = [PartitionBooks(p, engine("trading", BookEngine)) for p in range(partitions)]
    aggregates = Aggregates(partitions, engine("trading"))
    agg_rules = AlertEngine(rules, aggregates.engine, log_events=False)
    got: list[AlertEvent] = []
    for i in range(0, len(events), BATCH):
        for message in router.route(events[i : i + BATCH]):
            booked = workers[message.partition].on_part(PART_DECODER.decode(message.payload))
            assert booked is not None
            aggregates.add(RECORDS_DECODER.decode(PART_ENCODER.encode(booked.records)))
        clock = aggregates.engine.clock_ns
        applied = aggregates.apply()
        if applied.batch is not None and applied.records:
            got += agg_rules.on_batch([], applied.batch, clock)

    assert {rule["name"] for rule in RULES} == {e.rule.name for e in want}  # every rule fires on this stream
    assert transitions(got) == transitions(want)
