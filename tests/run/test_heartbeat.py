"""Heartbeat perf points: an idle series is written again once `run.heartbeat` of event time has passed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from collector.config import Settings
from collector.engine.engine import Engine
from collector.engine.series import Series
from collector.run.collector import Collector
from collector.run.heartbeat import Heartbeat
from collector.store.reader import Reader
from tests.helpers import fill
from tests.run.conftest import running, scalar, wait_for, with_sources

S = 10**9


def _series(strategy: str, fills: int = 1) -> Series:
    series = Engine()._series("strategy", "_all", strategy)  # a view over its engine's arrays
    series.fills = fills
    return series


def test_unchanged_series_are_due_once_an_interval_has_passed() -> None:
    idle, busy, empty = _series("idle"), _series("busy"), _series("new", fills=0)
    every = [idle, busy, empty]
    beat = Heartbeat(60.0)
    assert beat.due(set(), every, 100 * S) == {idle, busy}  # never written: due at once; no fills: never
    assert beat.due({busy}, every, 130 * S) == {busy}
    assert beat.due(set(), every, 159 * S) == set()
    assert beat.due(set(), every, 160 * S) == {idle}  # 60 s after its last point; busy was written at 130
    assert beat.due(set(), every, 190 * S) == {busy}
    assert beat.due({idle}, every, 200 * S) == {idle}
    assert beat.due(set(), every, 1000 * S) == {idle, busy}


def test_the_scan_waits_for_the_oldest_point() -> None:
    every = [_series(f"s{i}") for i in range(3)]
    beat = Heartbeat(60.0)
    beat.due(set(), every, 0)
    assert beat.due({every[0]}, every, 30 * S) == {every[0]}
    assert beat.due(set(), every, 59 * S) == set()
    assert beat.due(set(), every, 60 * S) == {every[1], every[2]}
    assert beat.due(set(), every, 90 * S) == {every[0]}


def test_an_idle_strategy_keeps_getting_perf_points(settings: Settings, reader: Reader, tmp_path: Path) -> None:
    """One round trip of `idle_s`, then `busy_s` trades for 10 minutes: idle_s's newest perf point stays
    within a heartbeat of the clock (without the heartbeat it would stay at 14:01:30)."""
    first = [
        fill(fill_id="i1", strategy="idle_s", symbol="NQ", ts="2024-03-01T14:00:00Z"),
        fill(fill_id="i2", strategy="idle_s", symbol="NQ", side="sell", price=5101.0, ts="2024-03-01T14:00:01Z"),
        fill(fill_id="b1", strategy="busy_s", ts="2024-03-01T14:01:30Z"),
    ]
    later = [
        fill(fill_id=f"b{i}", strategy="busy_s", side="buy" if i % 2 else "sell", ts=f"2024-03-01T14:{i:02d}:30Z")
        for i in range(2, 11)
    ]
    path = tmp_path / "fills.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in first))
    source = {"type": "file", "paths": [str(path)], "poll_interval": 0.02}
    collector = Collector(with_sources(settings, source, run={"heartbeat": 60.0, "flush_interval": 0.02}))
    newest = 'SELECT last("equity") FROM perf WHERE "level" = \'strategy\' AND "strategy" = \'{}\''
    with running(collector):
        points = 'SELECT count("equity") FROM perf WHERE "strategy" = \'busy_s\''
        wait_for(lambda: scalar(reader, points) > 0, 30, "the first perf points")
        with path.open("a") as handle:
            handle.write("".join(json.dumps(line) + "\n" for line in later))
        wait_for(lambda: collector.counters.fills_in == len(first) + len(later), 30, "all fills")
    idle_at, busy_at = (reader.query(newest.format(name)).index[-1] for name in ("idle_s", "busy_s"))
    assert busy_at == pd.Timestamp("2024-03-01T14:10:30Z")
    assert busy_at - idle_at <= pd.Timedelta(seconds=60), (idle_at, busy_at)
