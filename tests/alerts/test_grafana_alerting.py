"""Generated Grafana alerting: committed = fresh build, valid by the checker, every query run on real data."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.alerts.rules import load_rules
from collector.config import Settings
from collector.grafana.alerting import SERIES_TAGS
from collector.grafana.build import build, stale, write_alerting
from collector.grafana.checker import check_directory
from collector.run.collector import Collector
from collector.store.connect import open_writer
from collector.store.lineproto import point
from collector.store.reader import Reader
from tests.run.conftest import running, scalar, wait_for, with_sources

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "grafana"
EVERYTHING_FIRES = """
rules:
  - {name: t-fills, level: book, kind: threshold, metric: fills, op: ge, value: 1}
  - {name: t-winrate, level: strategy, kind: threshold, metric: win_rate, window_trades: 5, op: ge, value: 0}
  - {name: t-dd, level: strategy, kind: drawdown_pct, threshold: 0.000000001}
  - {name: t-sharpe, level: strategy, kind: sharpe, below: 1000, window_days: 3, min_days: 3}
  - {name: t-slip, level: book, kind: slippage_anomaly, z: 0.5, window: 50, min_samples: 10}
  - {name: t-degr, level: strategy, kind: degradation, warmup: 5, threshold: 0.01}
  - {name: t-stale, level: strategy, kind: staleness, minutes: 0.01,
     hours: {start: "00:00", end: "23:59:59", days: [mon, tue, wed, thu, fri, sat, sun]}}
  - {name: t-opp, level: portfolio, kind: opportunity, psr_above: 0.01, benchmark_sharpe: -100, window_days: 3,
     min_days: 3}
  - {name: t-health, level: collector, kind: health, metric: lag_ms, op: ge, value: 0}
"""


def test_committed_files_equal_a_fresh_build_and_pass_the_checker() -> None:
    assert stale(ROOT / "rules" / "alerts.yaml", COMMITTED) == []
    assert check_directory(COMMITTED / "provisioning" / "alerting") == []


EVERY_SECRET = {
    "STRATMON_SLACK_WEBHOOK_URL": "http://127.0.0.1:9/slack",
    "STRATMON_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook",
    "GF_SMTP_ENABLED": "true",
    "GF_SMTP_HOST": "127.0.0.1:25",
}


def _mutate(directory: Path, name: str, change: Any) -> list[str]:
    path = directory / name
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))
    return check_directory(directory, environ=EVERY_SECRET)


@pytest.mark.parametrize(
    ("file", "change", "expected"),
    [
        ("stratmon-rules.yaml", lambda d: d["groups"][0].update(interval="15s"), "multiple of 10s"),
        ("stratmon-rules.yaml", lambda d: d["groups"][0]["rules"][0].update(condition="Z"), "not one of the refIds"),
        (
            "stratmon-rules.yaml",
            lambda d: d["groups"][0]["rules"][0]["data"][0].update(datasourceUid="x"),
            "not a provisioned datasource",
        ),
        ("stratmon-rules.yaml", lambda d: d["groups"][0]["rules"][0]["labels"].update(team="$TEAM"), "env-expanded"),
        ("stratmon-rules.yaml", lambda d: d["groups"][0]["rules"][0].pop("panelId"), "must be set together"),
        (
            "stratmon-rules.yaml",
            lambda d: d["groups"][0]["rules"][0]["data"][2]["model"]["conditions"].append({"evaluator": {}}),
            "exactly one condition",
        ),
        (
            "stratmon-contact-points.yaml",
            lambda d: d["contactPoints"][0]["receivers"][0]["settings"].pop("url"),
            "recipient must be specified",
        ),
        ("stratmon-policies.yaml", lambda d: d["policies"][0].update(receiver="nobody"), "not a provisioned contact"),
        ("stratmon-policies.yaml", lambda d: d.pop("muteTimes"), "mute time interval"),
    ],
)
def test_checker_catches_what_grafana_rejects(tmp_path: Path, file: str, change: Any, expected: str) -> None:
    directory = tmp_path / "alerting"
    # every notifier configured, so contact points and policies exist to break
    write_alerting(ROOT / "rules" / "alerts.yaml", directory, EVERY_SECRET)
    assert check_directory(directory, environ=EVERY_SECRET) == []
    problems = _mutate(directory, file, change)
    assert any(expected in problem for problem in problems), problems


def _queries(directory: Path) -> list[tuple[str, str]]:
    rules = yaml.safe_load((directory / "provisioning" / "alerting" / "stratmon-rules.yaml").read_text())
    return [
        (rule["uid"], query["model"]["query"])
        for group in rules["groups"]
        for rule in group["rules"]
        for query in rule["data"]
        if query["datasourceUid"] != "__expr__"
    ]


def test_every_generated_query_returns_the_series_its_rule_needs(
    settings: Settings, reader: Reader, tmp_path: Path
) -> None:
    rules_file = tmp_path / "alerts.yaml"
    rules_file.write_text(EVERYTHING_FIRES)
    simulator = {"type": "simulator", "accounts": 2, "strategies": 6, "speed": 200_000.0, "backfill": 5 * 86_400.0}
    collector = Collector(
        with_sources(
            settings, simulator, alerts={"enabled": True, "rules": str(rules_file)}, run={"health_interval": 0.3}
        )
    )
    with running(collector):
        count = "SELECT count(active) FROM alerts WHERE rule = '{}'"
        for name in ("t-sharpe", "t-opp", "t-health", "t-stale", "t-slip", "t-degr"):
            statement = count.format(name)
            wait_for(lambda statement=statement: scalar(reader, statement) > 0, 60, f"rule {name} to fire")  # type: ignore[misc]
    out = tmp_path / "grafana"
    build(rules_file, out)
    assert check_directory(out / "provisioning" / "alerting") == []
    generated = _queries(out)
    assert len(generated) == 9
    for uid, query in generated:
        frame = reader.query(query.replace("$timeFilter", "time > now() - 30d"))
        assert not frame.empty, (uid, query)
        level = next(rule.level for rule in load_rules(rules_file).rules if f"stratmon-{rule.name}" == uid)
        assert set(SERIES_TAGS[level]) <= set(frame.columns), (uid, frame.columns)
        assert frame.iloc[:, 0].notna().all()
    # the shipped rules' queries run on the same data too (native ones find their series); the
    # optimizer's proposals come from its job, so one is written here as it would write it
    writer = open_writer(settings)
    writer.write(
        point(
            "suggestions",
            {
                "rule": "retune",
                "level": "strategy",
                "account": "_all",
                "strategy": "trend_es",
                "risk": "medium",
                "status": "proposed",
            },
            {"param": "lookback", "old": 50.0, "new": 60.0, "rationale": "test", "confidence": 0.97},
            time.time_ns(),
        )
    )
    writer.close()
    for uid, query in _queries(COMMITTED):
        frame = reader.query(query.replace("$timeFilter", "time > now() - 30d"))
        if '"alerts"' not in query:
            assert not frame.empty, (uid, query)
