"""Alert rules and jobs in bus mode: book rules in the workers, the other levels in the aggregator, each
transition an `alerts` point and a notification to a real webhook on 127.0.0.1 — the same rules firing on
the same series as one engine's (round-trip-driven rules too: the aggregator feeds the records' trips).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from pathlib import Path

import pytest
import yaml

from collector.alerts.evaluator import AlertEngine
from collector.alerts.rules import AlertRules
from collector.config import Settings
from collector.engine.engine import Engine
from collector.model import Fill, Mark
from collector.receivers import http_receiver
from collector.store.reader import Reader
from tests.bus.natscluster import NatsCluster
from tests.bus.test_equivalence import fresh
from tests.bus.test_equivalence_bus import CAPITAL, bus_settings, fill_record, fills_stream, run_bus, write_jsonl

# monotonic statistics: they fire once per series whatever the batch boundaries, so bus == one engine exactly
RULES = [
    ("book_trades", "book", "trades", 1.0),
    ("strategy_trades", "strategy", "trades", 3.0),
    ("account_losses", "account", "losses", 2.0),
    ("portfolio_wins", "portfolio", "wins", 1.0),
]
Key = tuple[str, str, str, str]  # rule, level, account, strategy


def rules_file(path: Path) -> Path:
    rules = {
        "notifiers": {"hook": {"type": "webhook", "url_env": "H2_HOOK_URL"}},
        "defaults": {"group_interval": 0.05},
        "rate_limit": {"count": 100_000},
        "rules": [
            {"name": name, "level": level, "kind": "threshold", "metric": metric, "op": "ge", "value": value}
            | {"fast_path": True, "notify": ["hook"], "grafana": False}
            for name, level, metric, value in RULES
        ],
    }
    path.write_text(yaml.safe_dump(rules))
    return path


def one_engine_firing(events: list[Fill | Mark], rules: Path, basis: str) -> set[Key]:
    engine = Engine(CAPITAL, 1e6, basis)  # type: ignore[arg-type]
    alerts = AlertEngine(AlertRules.model_validate(yaml.safe_load(rules.read_text())), engine, log_events=False)
    fired = alerts.on_batch(events, engine.on_events(events), 0)
    return {(e.rule.name, e.level, e.account, e.strategy) for e in fired if e.state == "firing"}


def test_bus_alerts_reach_the_webhook_and_jobs_run(
    nats_cluster: NatsCluster,
    settings: Settings,
    reader: Reader,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Half the stream, a clean stop, the rest: the alert states come back from the checkpoints, so every
    rule fires once per series across the restart."""
    rng = random.Random(16)
    raw = fills_stream(rng, 400)
    half = len(raw) // 2
    path = tmp_path / "fills.jsonl"
    write_jsonl(path, raw[:half])
    rules = rules_file(tmp_path / "rules.yaml")
    data = bus_settings(settings, nats_cluster, path, 2, 23).model_dump()
    data.update(alerts={"enabled": True, "rules": str(rules)}, jobs={"enabled": True, "rollups": ["1m"]})
    config = Settings(**data)
    events = fresh(raw)
    want = one_engine_firing(events, rules, config.metrics.day_basis)
    assert {key[1] for key in want} == {"book", "strategy", "account", "portfolio"}  # every level is exercised
    caplog.set_level(logging.INFO, logger="collector.jobs.scheduler")
    with http_receiver() as hook:
        monkeypatch.setenv("H2_HOOK_URL", hook.url + "/alerts")
        asyncio.run(run_bus(config, 2, len(fresh(raw[:half])) - 1))  # the dispatchers send what waits as they close
        with open(path, "a") as handle:
            handle.writelines(json.dumps(fill_record(fill)) + "\n" for fill in raw[half:])
        asyncio.run(run_bus(config, 2, len(events) - 1))
        notified = [
            (alert["rule"], alert["level"], alert["account"], alert["strategy"])
            for request in hook.requests
            for alert in request.json()["alerts"]
        ]
    assert sorted(notified) == sorted(want)  # each once
    stored = reader.query('SELECT last(active) AS active FROM alerts GROUP BY "rule", "level", "account", "strategy"')
    columns = (stored[tag] for tag in ("rule", "level", "account", "strategy"))
    assert set(zip(*columns, strict=True)) == want
    health = reader.query('SELECT last(alerts_fired) AS fired FROM collector GROUP BY "partition"')
    assert set(health["partition"]) == {"0", "1", "aggregate"}  # every process reports its rules, as `run` does
    assert any("rollup_1m:" in message for message in caplog.messages)  # the aggregator ran the scheduled jobs
