"""Rollups against an independent as-of computation with pandas, in memory and through InfluxDB."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from collector.config import Settings
from collector.jobs.rollups import COUNTERS, Rollup, rollup_rows
from collector.model import NS
from collector.run.collector import perf_line
from collector.store.connect import open_writer
from collector.store.reader import Reader

T0 = pd.Timestamp("2024-03-04T09:00:00Z")
SERIES = [("book", "ACC1", "trend"), ("strategy", "_all", "trend"), ("portfolio", "_all", "_all")]


def perf_points(seed: int, start: pd.Timestamp, minutes: int, n: int) -> pd.DataFrame:
    """Cumulative perf samples at random times: equity a random walk, counters non-decreasing."""
    rng = np.random.default_rng(seed)
    frames = []
    for level, account, strategy in SERIES:
        times = np.sort(rng.choice(minutes * 60_000, size=n, replace=False)) * 1_000_000  # ms → ns offsets
        frame = pd.DataFrame(
            {
                "time": start + pd.to_timedelta(times, unit="ns"),
                "equity": np.cumsum(rng.normal(0, 100, n)),
                "fills": np.cumsum(rng.integers(0, 4, n)),
                "trades": np.cumsum(rng.integers(0, 2, n)),
                "volume": np.cumsum(rng.uniform(0, 1e5, n)),
                "fees": np.cumsum(rng.uniform(0, 5, n)),
            }
        )
        frame["wins"] = np.minimum(frame["trades"], np.cumsum(rng.integers(0, 2, n)))
        frame["losses"] = frame["trades"] - frame["wins"]
        frame["return_cum"] = frame["equity"] / 1e6
        frame["level"], frame["account"], frame["strategy"] = level, account, strategy
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def expected_windows(points: pd.DataFrame, width: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """As-of definition: open = the series' last value before the window (0 if none), close = last inside."""
    rows: list[dict[str, Any]] = []
    for key, series in points.groupby(["level", "account", "strategy"]):
        series = series.sort_values("time").set_index("time")
        for label, inside in series.resample(width):
            window_start = pd.Timestamp(str(label))
            if inside.empty or window_start < start or window_start >= end:
                continue
            before = series[series.index < window_start]
            prev = before.iloc[-1] if len(before) else pd.Series(0.0, index=series.columns)
            row: dict[str, Any] = {"level": key[0], "account": key[1], "strategy": key[2], "time": window_start}
            row["equity_open"] = float(prev["equity"])
            row["equity_close"] = float(inside["equity"].iloc[-1])
            row["equity_min"] = min(float(inside["equity"].min()), row["equity_open"])
            row["equity_max"] = max(float(inside["equity"].max()), row["equity_open"])
            row["pnl"] = row["equity_close"] - row["equity_open"]
            row["return"] = float(inside["return_cum"].iloc[-1] - prev["return_cum"])
            for name in COUNTERS:
                row[name] = float(inside[name].iloc[-1] - prev[name])
            rows.append(row)
    return pd.DataFrame(rows).sort_values(["level", "account", "strategy", "time"]).reset_index(drop=True)


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    got = got.sort_values(["level", "account", "strategy", "time"]).reset_index(drop=True)
    assert len(got) == len(want) > 0
    assert list(got["time"]) == list(want["time"])
    for column in ("equity_open", "equity_close", "equity_min", "equity_max", "pnl", "return", *COUNTERS):
        np.testing.assert_allclose(got[column].astype(float), want[column].astype(float), rtol=1e-9, atol=1e-6)


def _window_input(points: pd.DataFrame, width: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the two InfluxQL queries return, built with pandas (the pure part under test)."""
    keys = ["level", "account", "strategy"]
    last_cols = ["equity", "return_cum", *COUNTERS]
    grouped = points.set_index("time").groupby(keys).resample(width)
    windows = grouped[last_cols].last().join(grouped["equity"].agg(["min", "max"]))
    windows = windows.rename(columns={"min": "equity_min", "max": "equity_max"}).dropna(subset=["equity"])
    return windows.reset_index(), pd.DataFrame()


@pytest.mark.parametrize("width", ["1min", "15min", "1h"])
def test_rollup_rows_match_an_as_of_computation(width: str) -> None:
    points = perf_points(1, T0, minutes=180, n=400)
    windows, previous = _window_input(points, width)
    got = rollup_rows(windows, previous)
    assert_same(got, expected_windows(points, width, T0, T0 + pd.Timedelta(hours=4)))


def _write(settings: Settings, points: pd.DataFrame) -> None:
    writer = open_writer(settings)
    for row in points.to_dict("records"):
        fields = {k: row[k] for k in ("level", "account", "strategy", "equity", "return_cum", *COUNTERS)}
        for name in ("fills", "trades", "wins", "losses"):
            fields[name] = int(fields[name])
        writer.write(perf_line(fields, int(pd.Timestamp(row["time"]).value)))
    writer.close()


def _read(reader: Reader, measurement: str) -> pd.DataFrame:
    frame = reader.query(f'SELECT * FROM "{measurement}" GROUP BY "level", "account", "strategy"').reset_index()
    return frame


def test_catch_up_through_influxdb_with_a_gap_and_rerun(settings: Settings, reader: Reader, tmp_path: Path) -> None:
    settings.jobs.lateness = 0
    first = perf_points(2, T0, minutes=90, n=300)
    _write(settings, first)
    rollup = Rollup(settings, "1m")
    writer = open_writer(settings)
    try:
        result = rollup.catch_up(reader, writer)
        assert result is not None and result.points > 0
        done = rollup.watermark()
        assert done is not None
        assert done == first["time"].max().value - first["time"].max().value % (60 * NS)
        # the collector is down for a while; data keeps arriving (from a replay), then the job runs again
        later = perf_points(3, pd.Timestamp(done, unit="ns", tz="UTC") + pd.Timedelta(minutes=5), minutes=60, n=200)
        for column in ("equity", "return_cum", *COUNTERS):  # continue the cumulative values per series
            for key, last in first.groupby(["level", "account", "strategy"])[column].last().items():
                mask = (
                    later[["level", "account", "strategy"]] == pd.Series(key, index=["level", "account", "strategy"])
                ).all(axis=1)
                later.loc[mask, column] += last
        _write(settings, later)
        rollup.catch_up(reader, writer)
        everything = pd.concat([first, later], ignore_index=True)
        newest = everything["time"].max()
        end = newest.floor("1min")
        want = expected_windows(everything, "1min", T0, end)
        got = _read(reader, "perf_1m")
        assert_same(got, want)
        rollup.catch_up(reader, writer)  # nothing new: nothing changes
        Rollup(settings, "1m").backfill(reader, writer, T0.value, end.value)  # a re-run overwrites in place
        assert_same(_read(reader, "perf_1m"), want)
        hourly = Rollup(settings, "1h")
        hourly.catch_up(reader, writer)
        assert_same(_read(reader, "perf_1h"), expected_windows(everything, "1h", T0, newest.floor("1h")))
    finally:
        writer.close()
    assert math.isclose(float(_read(reader, "perf_1m")["pnl"].sum()), float(want["pnl"].sum()))
