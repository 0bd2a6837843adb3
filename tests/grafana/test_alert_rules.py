"""The provisioned alert rules stay true: ranges that outlast the heartbeat, KeepLast, the panel they show,
clickable absolute links, no grouping by tags a level does not have, fractions printed as percentages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from collector.alerts.rules import HealthRule, load_rules
from collector.config import RunConfig
from collector.grafana.alerting import FRACTIONS, SERIES_TAGS

ROOT = Path(__file__).resolve().parents[2]
ALERTING = ROOT / "grafana" / "provisioning" / "alerting"


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((ALERTING / "stratmon-rules.yaml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _source() -> dict[str, Any]:
    return {f"stratmon-{rule.name}"[:40]: rule for rule in load_rules(ROOT / "rules" / "alerts.yaml").rules}


def test_perf_rules_look_back_past_the_heartbeat_and_keep_their_state_without_data() -> None:
    heartbeat = RunConfig().heartbeat
    for rule in _rules():
        query = rule["data"][0]
        lookback = query["relativeTimeRange"]["from"]
        if '"perf"' in query["model"]["query"]:
            assert lookback >= 10 * heartbeat, rule["uid"]  # ten missed heartbeats before a series is gone
            assert rule["noDataState"] == "KeepLast", rule["uid"]
        elif '"collector"' in query["model"]["query"]:
            assert rule["noDataState"] == "NoData", rule["uid"]  # a silent collector is an alert itself
        else:
            assert rule["noDataState"] == "KeepLast", rule["uid"]


def test_each_rule_names_the_panel_it_shows_and_links_absolutely() -> None:
    source = _source()
    for rule in _rules():
        dashboard = json.loads((ROOT / "grafana" / "dashboards" / f"{rule['dashboardUid']}.json").read_text())
        panel = next(p for p in dashboard["panels"] if p["id"] == rule["panelId"])
        assert panel["type"] != "row", rule["uid"]
        watched = source[rule["uid"]]
        if watched.kind == "drawdown_pct":
            assert "drawdown_pct" in panel["targets"][0]["query"], (rule["uid"], panel["title"])
        if isinstance(watched, HealthRule):
            assert f'"{watched.metric}"' in panel["targets"][0]["query"], (rule["uid"], panel["title"])
        url = rule["annotations"]["dashboard_url"]
        assert url.startswith('{{ reReplaceAll "/$" "" externalURL }}/d/' + rule["dashboardUid"]), url


def test_rules_group_and_describe_by_the_tags_of_their_level() -> None:
    source = _source()
    for rule in _rules():
        level = source[rule["uid"]].level
        query = rule["data"][0]["model"]["query"]
        grouped = query.partition(" GROUP BY ")[2]
        assert grouped == ", ".join(f'"{tag}"' for tag in SERIES_TAGS[level]), (rule["uid"], query)
        summary = rule["annotations"]["summary"]
        for tag in ("account", "strategy", "instance"):
            assert (f"$labels.{tag}" in summary) == (tag in SERIES_TAGS[level]), (rule["uid"], summary)
        if level in ("portfolio", "account", "strategy", "book"):
            link = rule["annotations"]["dashboard_url"]
            assert "_all" not in link and ("var-account" in link) == ("account" in SERIES_TAGS[level]), link


def test_fractions_print_as_percentages() -> None:
    rules = _rules()
    fractions = [r for r in rules if any(f'last("{m}")' in r["data"][0]["model"]["query"] for m in FRACTIONS)]
    assert fractions  # the drawdown rules at least
    for rule in fractions:
        assert "humanizePercentage $values.B.Value" in rule["annotations"]["summary"], rule["uid"]
    for rule in rules:
        if rule not in fractions and "$values.B.Value" in rule["annotations"]["summary"]:
            assert "humanizePercentage" not in rule["annotations"]["summary"], rule["uid"]
