"""`stratmon run` with the example config's simulator: every level, every strategy, health and rollups land."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from collector.cli import main
from collector.config import Settings, load_settings
from collector.jobs.rollups import Rollup
from collector.run.collector import Collector
from collector.store.reader import Reader
from tests.run.conftest import running, scalar, wait_for, with_sources

ROOT = Path(__file__).resolve().parents[2]


def test_example_simulator_feeds_all_levels_health_and_rollups(settings: Settings, reader: Reader) -> None:
    example = load_settings(ROOT / "stratmon.example.yaml").sources[0].model_dump()
    example |= {"speed": 20_000.0, "backfill": 2 * 86_400.0}  # two simulated days, quickly
    run_settings = with_sources(settings, example, jobs={"enabled": True, "rollup_every": 0.5, "lateness": 0})
    collector = Collector(run_settings)
    strategies_query = 'SHOW TAG VALUES FROM perf WITH KEY = "strategy"'

    def strategies() -> set[str]:
        frame = reader.query(strategies_query) if scalar(reader, "SELECT count(fills) FROM perf") else None
        return set() if frame is None or frame.empty else set(frame["value"]) - {"_all"}

    with running(collector):
        wait_for(lambda: len(strategies()) == 31, 90, "every strategy trading")  # carry trades twice a day
        wait_for(lambda: scalar(reader, "SELECT count(equity_close) FROM perf_1h") > 0, 90, "hourly rollups")
        wait_for(lambda: scalar(reader, "SELECT count(fills_in) FROM collector") > 0, 30, "a health point")
    levels = reader.query('SELECT last(equity) FROM perf GROUP BY "level"')
    assert set(levels["level"]) == {"portfolio", "account", "strategy", "book"}
    assert len(strategies()) == 31
    assert scalar(reader, "SELECT last(fills_in) FROM collector") == collector.counters.fills_in > 0
    assert scalar(reader, "SELECT last(latency_p99_ms) FROM collector") > 0
    assert scalar(reader, "SELECT last(fills) FROM perf WHERE level = 'portfolio'") == collector.counters.fills_in
    assert 0 < scalar(reader, "SELECT sum(fills) FROM perf_1m WHERE level = 'portfolio'") <= collector.counters.fills_in


def test_rollup_and_jobs_commands(settings: Settings, reader: Reader, tmp_path: Path) -> None:
    run_settings = with_sources(settings, {"type": "simulator", "speed": 50_000.0, "backfill": 86_400.0})
    collector = Collector(run_settings)
    with running(collector):
        wait_for(lambda: scalar(reader, "SELECT last(fills) FROM perf WHERE level = 'portfolio'") > 2000, 60, "fills")
    config = tmp_path / "c.yaml"
    data = run_settings.model_dump(mode="json", exclude={"sources"})
    data["jobs"]["lateness"] = 0
    config.write_text(yaml.safe_dump(data))
    assert (
        main(
            [
                "rollup",
                "--config",
                str(config),
                "--from",
                "2020-01-01T00:00:00Z",
                "--to",
                "2100-01-01T00:00:00Z",
                "--window",
                "1d",
            ]
        )
        == 0
    )
    days = scalar(reader, "SELECT count(pnl) FROM perf_1d WHERE level = 'portfolio'")
    assert days >= 1
    total = scalar(reader, "SELECT sum(fills) FROM perf_1d WHERE level = 'portfolio'")
    assert total == scalar(reader, "SELECT last(fills) FROM perf WHERE level = 'portfolio'")
    done = subprocess.run(
        [sys.executable, "-m", "collector", "jobs", "run", "rollup_1h", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "rollup_1h:" in done.stdout, done.stderr
    watermark = Rollup(run_settings, "1h").watermark()  # the job rolls up completed hours only
    assert watermark is not None
    before = f"SELECT last(fills) FROM perf WHERE level = 'portfolio' AND time < {watermark}"
    assert scalar(reader, "SELECT sum(fills) FROM perf_1h WHERE level = 'portfolio'") == scalar(reader, before) > 0
    bad = subprocess.run(
        [sys.executable, "-m", "collector", "jobs", "run", "nope", "--config", str(config)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "unknown job" in bad.stderr
