"""kill -9 of `stratmon run` in the middle of a file ingest, then a restart: exactly once, same metrics."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from collector.config import Settings
from collector.engine.engine import Engine
from collector.engine.series import METRIC_FIELDS
from collector.model import NS, FillValidator
from collector.sources.synthetic import synthetic_fills, write_jsonl
from collector.store.reader import Reader
from tests.run.conftest import scalar, wait_for

TOTAL = 100_000


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "collector", "run", "--config", str(config), "--log-level", "INFO"],
        stdout=subprocess.DEVNULL,
        stderr=open(log, "ab"),
        env={k: v for k, v in os.environ.items() if not k.startswith("STRATMON_")},
    )


def _clean_run(path: Path, settings: Settings) -> dict[tuple[str, str, str], dict[str, object]]:
    engine = Engine(settings.capital.accounts, settings.capital.default)
    validator = FillValidator(settings.ingest.max_future_skew)
    now = time.time_ns()
    for line in path.read_text().splitlines():
        engine.on_fill(validator.validate(json.loads(line), now))
    return {(r["level"], r["account"], r["strategy"]): r for rows in engine.rows().values() for r in rows}


def test_kill_9_mid_ingest_then_restart_is_exactly_once(tmp_path: Path, settings: Settings, reader: Reader) -> None:
    path = tmp_path / "fills.jsonl"
    write_jsonl(str(path), synthetic_fills(TOTAL, seed=11, start_ns=time.time_ns() - 3 * 86_400 * NS, step_ns=2 * NS))
    config = tmp_path / "stratmon.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp_path / "state"),
                "influx": {"url": settings.influx.url, "database": settings.influx.database},
                "spool": {"dir": str(tmp_path / "spool")},
                "ingest": {"dead_letter": str(tmp_path / "dead.jsonl")},
                "sources": [{"type": "file", "paths": [str(path)], "batch_lines": 500}],
                "run": {"snapshot_interval": 0.3, "flush_interval": 0.1},
                "jobs": {"enabled": False},
            }
        )
    )
    log = tmp_path / "run.log"
    first = _start(config, log)
    try:
        wait_for(lambda: scalar(reader, "SELECT count(qty) FROM fills") >= TOTAL * 0.3, 120, "a third of the fills")
        wait_for(lambda: (tmp_path / "state" / "collector" / "checkpoint.json").exists(), 30, "a checkpoint")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    written_before = scalar(reader, "SELECT count(qty) FROM fills")
    assert written_before < TOTAL, "the kill came too late to test anything"

    second = _start(config, log)
    try:
        portfolio_fills = "SELECT last(fills) FROM perf WHERE level = 'portfolio'"
        wait_for(lambda: scalar(reader, portfolio_fills) >= TOTAL, 180, "all fills processed after restart")
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0
    finally:
        second.kill()
    assert "continuing from checkpoint" in log.read_text()

    assert scalar(reader, "SELECT count(qty) FROM fills") == TOTAL
    assert scalar(reader, "SELECT count(distinct(fill_id)) FROM fills") == TOTAL
    assert scalar(reader, "SELECT last(fills_in) FROM collector") == TOTAL
    assert scalar(reader, "SELECT last(fills_duplicate) FROM collector") == 0

    expected = _clean_run(path, settings)
    latest = reader.query('SELECT * FROM perf GROUP BY "level", "account", "strategy" ORDER BY time DESC LIMIT 1')
    assert len(latest) == len(expected)
    for row in latest.to_dict("records"):
        want = expected[(row["level"], row["account"], row["strategy"])]
        for name in METRIC_FIELDS:
            got, ref = row.get(name), want[name]
            assert ref is None or isinstance(ref, int | float)
            if ref is None:
                assert got is None or (isinstance(got, float) and math.isnan(got)), (row["strategy"], name)
            else:
                assert not pd.isna(got) and math.isclose(float(got), float(ref), rel_tol=1e-9, abs_tol=1e-6), (
                    row["level"],
                    row["account"],
                    row["strategy"],
                    name,
                    got,
                    ref,
                )
