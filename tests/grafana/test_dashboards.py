"""Dashboards: stable, structurally valid, and every query returns rows from a real simulator run.

No Grafana runs here, so the tests do what Grafana would: substitute $timeFilter, $__interval
and the template variables (All and a single value), then run every panel, variable and
annotation query against the private InfluxDB.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.config import Settings
from collector.grafana.checker import check_dashboard
from collector.grafana.names import DASHBOARDS
from collector.jobs.rollups import Rollup
from collector.run.collector import Collector
from collector.store.connect import open_reader, open_writer
from collector.store.lineproto import point
from collector.store.reader import Reader
from tests.run.conftest import running, scalar, wait_for, with_sources

ROOT = Path(__file__).resolve().parents[2]
DAY_MS = 86_400_000


def _load(uid: str) -> dict[str, Any]:
    model: dict[str, Any] = json.loads((ROOT / "grafana" / "dashboards" / f"{uid}.json").read_text())
    return model


@pytest.mark.parametrize("uid", sorted(DASHBOARDS.values()))
def test_dashboard_structure(uid: str) -> None:
    model = _load(uid)
    assert check_dashboard(model, uid) == []
    assert model["panels"], uid


def test_checker_catches_broken_dashboards() -> None:
    model = _load(DASHBOARDS["strategy"])
    model["__inputs"] = []
    model["panels"][0]["datasource"] = {"uid": "other"}
    model["panels"][1]["targets"][0]["query"] += " AND $nosuch"
    model["templating"]["list"][0]["auto_count"] = 30
    model["annotations"]["list"][0]["query"] = model["annotations"]["list"][0]["target"].pop("query")
    problems = check_dashboard(model, DASHBOARDS["strategy"])
    assert any("__inputs" in p for p in problems)
    assert any("datasource must be" in p for p in problems)
    assert any("$nosuch" in p for p in problems)
    assert any("auto_count belong to interval variables" in p for p in problems)
    assert any("query belongs inside target" in p for p in problems)
    assert any("has no target.query" in p for p in problems)


def _link_urls(panel: dict[str, Any]) -> list[str]:
    """The data links of a panel: its field defaults' and its overrides'."""
    config = panel.get("fieldConfig") or {}
    links = list((config.get("defaults") or {}).get("links") or [])
    for override in config.get("overrides") or []:
        links += [link for prop in override["properties"] if prop["id"] == "links" for link in prop["value"]]
    return [str(link["url"]) for link in links]


def test_what_a_desk_keeps_open() -> None:
    """Drill-down links, drawdown in % below zero, Grafana's alert list, the overview's default refresh."""
    models = {key: _load(uid) for key, uid in DASHBOARDS.items()}
    portfolio = models["portfolio"]
    assert portfolio["refresh"] == "5s" and "1s" in portfolio["timepicker"]["refresh_intervals"]
    for key, model in models.items():
        assert model["links"][0]["includeVars"] and model["links"][0]["keepTime"], key
        assert [p for p in model["panels"] if p["type"] == "alertlist"] or key not in ("portfolio", "alerts"), key
    urls = [url for model in models.values() for panel in model["panels"] for url in _link_urls(panel)]
    for target in ("stratmon-account?var-account=", "stratmon-strategy?var-strategy=", "stratmon-fills?var-"):
        assert any(f"/d/{target}" in url for url in urls), (target, urls)
    drawdowns = [
        p for m in models.values() for p in m["panels"] if "drawdown" in p["title"].lower() and p["type"] != "row"
    ]
    assert drawdowns
    for panel in drawdowns:
        assert panel["fieldConfig"]["defaults"]["unit"] == "percentunit", panel["title"]
        assert "* -1" in panel["targets"][0]["query"], panel["title"]  # plotted below zero
        steps = [step["value"] for step in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]
        assert steps == [None, -0.02, -0.01], panel["title"]
    assert any(p["type"] == "heatmap" for p in portfolio["panels"])
    ranking = next(p for p in portfolio["panels"] if p["title"].startswith("Strategies, best to worst"))
    assert [t["id"] for t in ranking["transformations"]] == ["timeSeriesTable", "merge"]
    sparkline = next(
        o for o in ranking["fieldConfig"]["overrides"] if o["matcher"] == {"id": "byType", "options": "frame"}
    )
    assert {"id": "custom.cellOptions", "value": {"type": "sparkline"}} in sparkline["properties"]
    assert ranking["options"]["sortBy"] == [{"desc": True, "displayName": "return"}]


def _regex_value(values: list[str]) -> str:
    """What Grafana's InfluxDB datasource puts into /^$var$/ for the selected values."""
    escaped = [re.sub(r"([^A-Za-z0-9_])", r"\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


NICE_INTERVALS = [
    ("1s", 1),
    ("2s", 2),
    ("5s", 5),
    ("10s", 10),
    ("15s", 15),
    ("30s", 30),
    ("1m", 60),
    ("5m", 300),
    ("10m", 600),
    ("30m", 1800),
    ("1h", 3600),
    ("3h", 10800),
    ("6h", 21600),
]
UNITS_S = {"m": 60, "h": 3600, "d": 86400}


def _range_ms(model: dict[str, Any]) -> int:
    """The dashboard's default time range ("now-6h" …) in ms."""
    match = re.fullmatch(r"now-(\d+)([mhd])", model["time"]["from"])
    assert match, model["time"]
    return int(match.group(1)) * UNITS_S[match.group(2)] * 1000


def _interval(range_ms: int) -> str:
    """Grafana's $__interval: range / ~1000 points, at least the datasource's 1s, rounded up to a nice step."""
    wanted = max(1.0, range_ms / 1000 / 1000)
    return next((name for name, seconds in NICE_INTERVALS if seconds >= wanted), "6h")


def _substitute(query: str, variables: dict[str, str], start_ms: int, end_ms: int) -> str:
    interval = _interval(end_ms - start_ms)
    text = query.replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms").replace("$__interval", interval)
    for name, value in sorted(variables.items(), key=lambda item: -len(item[0])):
        text = text.replace(f"${name}", value)
    return text


def _queries(model: dict[str, Any]) -> Iterator[tuple[str, str, str | None]]:
    """(where, query, panel timeFrom) of every panel target and annotation."""
    for panel in model["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["query"], panel.get("timeFrom")
    for annotation in model["annotations"]["list"]:
        yield f"annotation {annotation['name']!r}", annotation["target"]["query"], None


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, influxd: Any) -> Iterator[Settings]:
    """A database filled by the simulated desk (3 days), its rollups, alerts, and optimizer records."""
    tmp = tmp_path_factory.mktemp("dash")
    settings = Settings(
        state_dir=tmp / "state",
        influx={"url": influxd.url, "database": "t_dashboards", "flush_interval": 0.2},
        spool={"dir": tmp / "spool"},
        ingest={"dead_letter": tmp / "dead.jsonl"},
    )
    simulator = {"type": "simulator", "speed": 100_000.0, "backfill": 3 * 86_400.0, "max_rate": 20_000.0}
    run_settings = with_sources(
        settings,
        simulator,
        alerts={"enabled": True, "rules": str(ROOT / "rules" / "alerts.yaml")},
        run={"health_interval": 0.2},
    )
    reader = _reader(run_settings)
    collector = Collector(run_settings)
    with running(collector):
        wait_for(lambda: collector.engine.clock_ns > time.time_ns() - 60 * 10**9, 120, "the simulator to catch up")
        wait_for(lambda: scalar(reader, "SELECT count(active) FROM alerts") > 0, 60, "alerts")
        # health points spread over several 5 s buckets, so per-second rates have two points
        wait_for(lambda: scalar(reader, "SELECT count(fills_in) FROM collector") >= 125, 60, "25 s of health points")
    run_settings.jobs.lateness = 0
    writer = open_writer(run_settings)
    for width in ("1m", "1h", "1d"):
        Rollup(run_settings, width).catch_up(reader, writer)
    now = time.time_ns()
    writer.write(
        point(
            "suggestions",
            {
                "rule": "scale-up",
                "level": "strategy",
                "account": "_all",
                "strategy": "mm_es",
                "risk": "low",
                "status": "applied",
            },
            {
                "param": "size_multiplier",
                "old": 1.0,
                "new": 1.1,
                "rationale": "PSR 0.97 over 20 days",
                "confidence": 0.97,
            },
            now - 3600 * 10**9,
        )
    )
    writer.write(
        point(
            "changes",
            {"strategy": "mm_es", "account": "ACC01", "param": "size_multiplier", "action": "apply"},
            {"old": 1.0, "new": 1.1, "suggestion_id": "s-1", "reason": "scale-up (canary)"},
            now - 3500 * 10**9,
        )
    )
    # a rule firing within the shortest dashboard range (1 h), as the collector writes one
    writer.write(
        point(
            "alerts",
            {
                "rule": "strategy-drawdown",
                "severity": "critical",
                "level": "strategy",
                "account": "_all",
                "strategy": "mm_es",
                "state": "firing",
            },
            {"value": 0.021, "threshold": 0.02, "active": 1, "message": "drawdown_pct 2.1% > 2%"},
            now - 600 * 10**9,
        )
    )
    writer.close()
    reader.close()
    yield run_settings


def _reader(settings: Settings) -> Reader:
    return open_reader(settings)


UNDEFINABLE = {"sharpe", "sortino", "profit_factor", "payoff_ratio", "avg_win", "avg_loss", "win_rate", "expectancy"}


def _undefined_now(reader: Reader, statement: str) -> bool:
    """The query reads a metric that can be undefined, and the series' latest perf point has no value for it."""
    match = re.match(r'SELECT last\("(\w+)"\) FROM "perf" WHERE "level" = \'(\w+)\' AND time', statement)
    if match is None or match.group(1) not in UNDEFINABLE:
        return False
    field, level = match.groups()
    latest = reader.query(f'SELECT * FROM "perf" WHERE "level" = \'{level}\' ORDER BY time DESC LIMIT 1')
    return not latest.empty and (field not in latest.columns or bool(latest[field].isna().all()))


def _busiest(reader: Reader, variable_query: str, chosen: dict[str, str], model: dict[str, Any]) -> str:
    """The value a user would pick: the one with the most points in the dashboard's range."""
    match = re.search(r'FROM "(\w+)" WITH KEY = "(\w+)"(?: WHERE (.*))?$', variable_query)
    assert match, variable_query
    measurement, key, condition = match.groups()
    end_ms = time.time_ns() // 1_000_000
    where = " AND ".join(c for c in (condition, "$timeFilter") if c)
    statement = _substitute(
        f'SELECT count(*) FROM "{measurement}" WHERE {where} GROUP BY "{key}"',
        chosen,
        end_ms - _range_ms(model),
        end_ms,
    )
    frame = reader.query(statement).reset_index(drop=True)
    counts = frame.drop(columns=[key]).sum(axis=1, numeric_only=True)
    return str(frame[key].iloc[int(counts.to_numpy().argmax())])


@pytest.mark.parametrize("uid", sorted(DASHBOARDS.values()))
@pytest.mark.parametrize("selection", ["all", "one"])
def test_every_query_returns_rows(loaded: Settings, uid: str, selection: str) -> None:
    model = _load(uid)
    reader = _reader(loaded)
    end_ms = time.time_ns() // 1_000_000
    start_ms = end_ms - _range_ms(model)
    variables: dict[str, str] = {}
    try:
        for variable in model.get("templating", {}).get("list", []):  # in order: later ones may depend on earlier ones
            query = _substitute(variable["query"], variables, start_ms, end_ms)
            frame = reader.query(query)
            assert not frame.empty, (uid, variable["name"], query)
            if selection == "all":
                variables[variable["name"]] = ".*"
            else:
                variables[variable["name"]] = _regex_value([_busiest(reader, variable["query"], variables, model)])
        for where, query, time_from in _queries(model):
            begin = start_ms
            if time_from:  # a panel's own relative range ("7d")
                days = re.fullmatch(r"(\d+)d", time_from)
                assert days, time_from
                begin = end_ms - int(days.group(1)) * DAY_MS
            statement = _substitute(query, variables, begin, end_ms)
            frame = reader.query(statement)
            if frame.empty and _undefined_now(reader, statement):
                continue  # e.g. Sortino without a losing day: Grafana shows "No data", correctly
            assert not frame.empty, (uid, where, statement)
            assert frame.notna().any().any(), (uid, where, statement)
    finally:
        reader.close()
