"""Alerts inside `run`: transitions land in InfluxDB with their latency and reach a local receiver."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.config import Settings
from collector.receivers import http_receiver
from collector.run.collector import Collector
from collector.store.reader import Reader
from tests.run.conftest import running, scalar, wait_for, with_sources

RULES = """
notifiers:
  hook: {type: webhook, url_env: T_HOOK_URL}
defaults: {group_interval: 0.2}
rules:
  - {name: streak, level: book, kind: threshold, metric: loss_streak, op: ge, value: 3, severity: critical,
     notify: [hook], fast_path: true}
"""


def test_fast_path_alerts_from_the_simulated_desk(
    settings: Settings, reader: Reader, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "alerts.yaml"
    rules.write_text(RULES)
    with http_receiver() as hook:
        monkeypatch.setenv("T_HOOK_URL", hook.url)
        simulator = {"type": "simulator", "speed": 20_000.0, "backfill": 86_400.0}
        collector = Collector(with_sources(settings, simulator, alerts={"enabled": True, "rules": str(rules)}))
        with running(collector):
            received = hook.wait(1, timeout=60)
            wait_for(lambda: scalar(reader, "SELECT count(active) FROM alerts") > 0, 30, "alerts in InfluxDB")
        payload = received[0].json()
        assert payload["rule"] == "streak" and payload["alerts"][0]["level"] == "book"
    firing = reader.query("SELECT * FROM alerts WHERE state = 'firing'")
    assert (firing["value"] >= 3).all() and (firing["threshold"] == 3).all() and (firing["active"] == 1).all()
    assert firing["latency_ms"].notna().all() and (firing["latency_ms"] >= 0).all()
    assert scalar(reader, "SELECT last(alerts_fired) FROM collector") == collector.alerts.fired > 0  # type: ignore[union-attr]
    resolved = reader.query("SELECT * FROM alerts WHERE state = 'resolved'")
    assert resolved.empty or ((resolved["active"] == 0).all() and (resolved["value"] < 3).all())
