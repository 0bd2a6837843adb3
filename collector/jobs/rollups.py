"""Rollups `perf_1m`, `perf_1h`, `perf_1d`: per series and window, equity OHLC and what the window added.

`perf` holds cumulative values (equity, fills, trades, ...) sampled whenever a series changes.
A window's row (timestamped at the window start, so re-running overwrites: idempotent):

    equity_open  = equity at the window's start = close of the series' previous window (0 before any)
    equity_close = last equity in the window
    equity_min / equity_max over the window's points and equity_open
    pnl     = equity_close − equity_open
    return  = return_cum at close − return_cum at open (the same capital base as `perf`)
    fills, volume, trades, wins, losses, fees = last cumulative value − the previous window's

Windows without any perf point of a series are skipped. A persisted watermark (end of the last
completed window) makes the job catch up after downtime; a window is completed once the newest
perf point is `lateness` seconds past its end.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from collector.config import Settings
from collector.model import NS
from collector.store.lineproto import point
from collector.store.reader import QueryError, Reader
from collector.store.writer import Writer

log = logging.getLogger(__name__)

WINDOWS = {"1m": 60, "1h": 3600, "1d": 86_400}
KEYS = ["level", "account", "strategy"]
COUNTERS = ("fills", "volume", "trades", "wins", "losses", "fees")
INT_COUNTERS = ("fills", "trades", "wins", "losses")
_LAST = ("equity", "return_cum", *COUNTERS)


def window_query(width: str, start_ns: int, end_ns: int) -> str:
    lasts = ", ".join(f'last("{name}") AS "{name}"' for name in _LAST)
    return (
        f'SELECT min("equity") AS "equity_min", max("equity") AS "equity_max", {lasts} FROM "perf" '
        f"WHERE time >= {start_ns} AND time < {end_ns} "
        f'GROUP BY time({width}), "level", "account", "strategy" fill(none)'
    )


def previous_query(start_ns: int) -> str:
    lasts = ", ".join(f'last("{name}") AS "{name}"' for name in _LAST)
    return f'SELECT {lasts} FROM "perf" WHERE time < {start_ns} GROUP BY "level", "account", "strategy"'


def rollup_rows(windows: pd.DataFrame, previous: pd.DataFrame) -> pd.DataFrame:
    """Pure: grouped window aggregates (+ each series' last values before them) → rollup rows.

    `windows`: one row per (series, window) with a `time` column and equity_min, equity_max and
    the last values of equity, return_cum and the counters. `previous`: the same last values
    per series before the first window (may be empty).
    """
    if windows.empty:
        return pd.DataFrame()
    frame = windows.sort_values([*KEYS, "time"]).reset_index(drop=True)
    carried = frame.groupby(KEYS, sort=False)[list(_LAST)].shift(1)  # the series' previous window
    if not previous.empty:
        before = frame[KEYS].merge(previous[[*KEYS, *_LAST]], on=KEYS, how="left")
        carried = carried.fillna(before[list(_LAST)])
    carried = carried.fillna(0.0)  # no earlier point: the series starts from zero
    out = frame[[*KEYS, "time"]].copy()
    out["equity_open"] = carried["equity"]
    out["equity_close"] = frame["equity"]
    out["equity_min"] = frame["equity_min"].where(frame["equity_min"] < carried["equity"], carried["equity"])
    out["equity_max"] = frame["equity_max"].where(frame["equity_max"] > carried["equity"], carried["equity"])
    out["pnl"] = frame["equity"] - carried["equity"]
    out["return"] = frame["return_cum"] - carried["return_cum"]
    for name in COUNTERS:
        out[name] = frame[name].astype(float) - carried[name].astype(float)
    return out


def rollup_lines(rows: pd.DataFrame, measurement: str) -> list[str]:
    lines = []
    for row in rows.to_dict("records"):
        fields: dict[str, float | int | None] = {}
        for key, value in row.items():
            name = str(key)
            if name in KEYS or name == "time":
                continue
            if pd.isna(value):
                continue
            fields[name] = round(value) if name in INT_COUNTERS else float(value)
        ts = int(pd.Timestamp(row["time"]).value)
        lines.append(point(measurement, {k: row[k] for k in KEYS}, fields, ts))
    return lines


def _frame(reader: Reader, statement: str) -> pd.DataFrame:
    frame = reader.query(statement)
    if frame.empty:
        return frame
    frame = frame.reset_index()
    for key in KEYS:
        if key not in frame.columns:
            frame[key] = ""
    return frame


def compute(reader: Reader, width: str, start_ns: int, end_ns: int) -> pd.DataFrame:
    """Rollup rows of all windows in [start, end) (bounds aligned to the window width)."""
    windows = _frame(reader, window_query(width, start_ns, end_ns))
    if windows.empty:
        return windows
    previous = _frame(reader, previous_query(start_ns))
    return rollup_rows(windows, previous)


@dataclass
class RollupResult:
    width: str
    start_ns: int
    end_ns: int
    windows: int
    points: int


class Rollup:
    """One rollup kind with its watermark file."""

    def __init__(self, settings: Settings, width: str) -> None:
        self.width = width
        self.step_ns = WINDOWS[width] * NS
        self.measurement = f"perf_{width}"
        self.lateness_ns = int(settings.jobs.lateness * NS)
        self.chunk_windows = settings.jobs.max_windows_per_query
        self.watermark_path = Path(settings.state_dir) / "jobs" / f"rollup_{width}.json"

    def floor(self, ts_ns: int) -> int:
        return ts_ns - ts_ns % self.step_ns

    def watermark(self) -> int | None:
        try:
            return int(json.loads(self.watermark_path.read_text())["done_until_ns"])
        except FileNotFoundError:
            return None

    def _save_watermark(self, ts_ns: int) -> None:
        self.watermark_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.watermark_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"done_until_ns": ts_ns, "measurement": self.measurement}))
        os.replace(tmp, self.watermark_path)

    def backfill(self, reader: Reader, writer: Writer, start_ns: int, end_ns: int) -> RollupResult:
        """Compute and write every window between the aligned bounds, in chunks; durable on return."""
        start, end = self.floor(start_ns), self.floor(end_ns + self.step_ns - 1)
        windows = points = 0
        chunk = self.chunk_windows * self.step_ns
        for lo in range(start, end, chunk):
            rows = compute(reader, self.width, lo, min(lo + chunk, end))
            lines = rollup_lines(rows, self.measurement)
            writer.write_lines(lines)
            points += len(lines)
            windows += rows["time"].nunique() if not rows.empty else 0
        writer.flush()
        return RollupResult(self.width, start, end, windows, points)

    def catch_up(self, reader: Reader, writer: Writer) -> RollupResult | None:
        """Every completed window since the watermark; None when there is no perf data yet."""
        newest = _edge_time(reader, "last")
        if newest is None:
            return None
        done = self.watermark()
        if done is None:
            oldest = _edge_time(reader, "first")
            assert oldest is not None
            done = self.floor(oldest)
        until = self.floor(newest - self.lateness_ns)
        if until <= done:
            return RollupResult(self.width, done, done, 0, 0)
        result = self.backfill(reader, writer, done, until)
        self._save_watermark(until)
        log.info("rollup %s: %d windows, %d points up to %s", self.measurement, result.windows, result.points, until)
        return result


def _edge_time(reader: Reader, selector: str) -> int | None:
    """Time of the oldest (`first`) or newest (`last`) perf point of the portfolio series."""
    try:
        frame = reader.query(f'SELECT {selector}("fills") FROM "perf" WHERE "level" = \'portfolio\'')
    except QueryError as exc:
        if "database not found" in str(exc):  # nothing written yet
            return None
        raise
    if frame.empty:
        return None
    return int(frame.index[0].value)
