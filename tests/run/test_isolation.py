"""Isolation: a state dir serves one deployment, `influx` commands follow the config, replays keep their time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from collector import demo
from collector.config import Settings, load_settings
from collector.errors import UserError
from collector.run import identity
from collector.run.collector import Collector
from collector.store.influxd import LocalInfluxd
from collector.store.reader import Reader
from tests.helpers import fill, write_jsonl
from tests.run.conftest import running, scalar, wait_for, with_sources

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sample-fills.jsonl"


def _stratmon(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATMON_")}
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "collector", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60
    )


def _config(path: Path, state_dir: Path, database: str) -> Path:
    settings = {
        "state_dir": str(state_dir),
        "influx": {"database": database},
        "spool": {"dir": str(state_dir / "spool")},
        "ingest": {"dead_letter": str(state_dir / "dead.jsonl")},
        "alerts": {"enabled": False},
        "jobs": {"enabled": False},
        "sources": [{"type": "file", "paths": [str(SAMPLE)]}],
    }
    path.write_text(yaml.safe_dump(settings))
    return path


def test_a_state_dir_of_another_database_or_config_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    demo_config = _config(tmp_path / "demo.yaml", state, "stratmon_demo")
    Collector(load_settings(demo_config))  # claims the directory
    again = Collector(load_settings(demo_config))  # the same deployment continues
    assert again.engine.clock_ns == 0

    real = _config(tmp_path / "real.yaml", state, "stratmon")
    with pytest.raises(UserError) as refused:
        Collector(load_settings(real))
    message = str(refused.value)
    assert "\n" not in message and "'stratmon_demo'" in message and "'stratmon'" in message
    assert str(demo_config) in message and str(real) in message  # which config owns it, which one tried

    same_database = _config(tmp_path / "other.yaml", state, "stratmon_demo")
    with pytest.raises(UserError, match="another deployment"):
        Collector(load_settings(same_database))  # another config file, same database

    # from the command line: one line, no traceback, nothing written to the other deployment's state
    done = _stratmon("run", "--config", str(real), "--duration", "1", cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "another deployment" in done.stderr, done.stderr
    owner = json.loads((state / "collector" / "identity.json").read_text())
    assert owner == {"database": "stratmon_demo", "config": str(demo_config.resolve())}


def test_a_state_dir_from_before_identities_is_adopted(tmp_path: Path) -> None:
    settings = load_settings(_config(tmp_path / "mine.yaml", tmp_path / "state", "mine"))
    (tmp_path / "state" / "collector").mkdir(parents=True)
    Collector(settings)
    assert json.loads((tmp_path / "state" / "collector" / "identity.json").read_text())["database"] == "mine"


@pytest.mark.skipif(shutil.which("influxd") is None, reason="influxd not installed")
def test_influx_commands_follow_the_config(tmp_path: Path) -> None:
    """`influx start|status|stop --config X` act on X's state_dir only (stop once ended another config's server)."""
    fresh = _config(tmp_path / "fresh.yaml", tmp_path / "fresh-state", "fresh")
    other = _config(tmp_path / "other.yaml", tmp_path / "other-state", "other")
    try:
        for config in (fresh, other):
            started = _stratmon("influx", "start", "--config", str(config), cwd=tmp_path)
            assert started.returncode == 0, started.stderr
        servers = {name: LocalInfluxd(tmp_path / f"{name}-state" / "influxdb") for name in ("fresh", "other")}
        states = {name: server.status() for name, server in servers.items()}
        assert states["fresh"] is not None and states["other"] is not None
        assert states["fresh"].pid != states["other"].pid
        status = _stratmon("influx", "status", "--config", str(other), cwd=tmp_path)
        assert status.returncode == 0 and states["other"].url in status.stdout

        stopped = _stratmon("influx", "stop", "--config", str(fresh), cwd=tmp_path)
        assert stopped.returncode == 0 and "stopped" in stopped.stdout
        assert servers["fresh"].status() is None and servers["other"].status() is not None
        assert _stratmon("influx", "status", "--config", str(fresh), cwd=tmp_path).returncode == 3
        # other commands of that config find its server through state_dir (no STRATMON_INFLUX_URL)
        query = _stratmon("query", "--config", str(other), "SHOW DATABASES", cwd=tmp_path)
        assert query.returncode == 0, query.stderr
    finally:
        for name in ("fresh", "other"):
            LocalInfluxd(tmp_path / f"{name}-state" / "influxdb").stop()


def test_replayed_history_keeps_its_own_timestamps(settings: Settings, reader: Reader, tmp_path: Path) -> None:
    """A 2024 file: every perf point (changes and heartbeats) is stamped inside the file's time span."""
    start = pd.Timestamp("2024-03-04T09:00:00Z")
    stamps = [start + pd.Timedelta(minutes=37 * i) for i in range(40)]  # two days of a book trading
    records = [
        fill(fill_id=f"f{i}", ts=ts.isoformat().replace("+00:00", "Z"), side="buy" if i % 2 == 0 else "sell")
        for i, ts in enumerate(stamps)
    ]
    path = write_jsonl(tmp_path / "history.jsonl", records[:20])
    source = {"type": "file", "paths": [str(path)], "poll_interval": 0.02}
    collector = Collector(with_sources(settings, source, run={"heartbeat": 600.0, "flush_interval": 0.05}))
    with running(collector):
        wait_for(lambda: scalar(reader, 'SELECT count("fills") FROM perf') > 0, 30, "the first perf points")
        time.sleep(1.0)  # wall time passes between the two halves: it must not show in the stamps
        with path.open("a") as handle:
            handle.write("".join(json.dumps(record) + "\n" for record in records[20:]))
        wait_for(lambda: collector.counters.fills_in == len(records), 60, "the file")
    frame = reader.query('SELECT "equity" FROM perf')
    assert not frame.empty
    # stamped at the engine's event clock (the last fill read so far), not at the wall clock of the replay
    assert frame.index.min() >= stamps[0] and frame.index.max() == stamps[-1], (frame.index.min(), frame.index.max())
    assert frame.index.min() <= stamps[19] and len(set(frame.index)) >= 2


def test_a_fast_replay_keeps_a_perf_point_per_series_and_day(
    settings: Settings, reader: Reader, tmp_path: Path
) -> None:
    """Four days read at once: each day's end has its perf point, so daily figures stay per day."""
    start = pd.Timestamp("2024-03-04T14:00:00Z")
    stamps = [start + pd.Timedelta(hours=6 * i) for i in range(12)]  # over 4 UTC days
    records = [
        fill(fill_id=f"d{i}", ts=ts.isoformat().replace("+00:00", "Z"), side="buy" if i % 2 == 0 else "sell")
        for i, ts in enumerate(stamps)
    ]
    path = write_jsonl(tmp_path / "days.jsonl", records)
    source = {"type": "file", "paths": [str(path)], "poll_interval": 0.02}
    collector = Collector(with_sources(settings, source, run={"heartbeat": 86_400.0, "flush_interval": 5.0}))
    with running(collector):
        wait_for(lambda: collector.counters.fills_in == len(records), 60, "the file")
    frame = reader.query('SELECT "equity" FROM perf WHERE "level" = \'portfolio\'')
    days = sorted({ts.date() for ts in frame.index})
    assert [str(day) for day in days] == ["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07"], frame
    last_of_day = {ts.date(): ts for ts in frame.index}
    ends = {ts.date(): ts for ts in stamps}
    for day, ts in last_of_day.items():
        assert ts == ends[day], (day, ts)  # each point at the last fill of its day


def test_the_demo_is_a_deployment_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATMON_INFLUX_DATABASE", "stratmon")  # a real deployment's environment
    monkeypatch.setenv("STRATMON_STATE_DIR", str(tmp_path / "real"))
    root = tmp_path / "demo"
    config = demo._write_config(root, 7200.0, 5 * 86_400.0)
    settings = load_settings(config)
    demo._isolate(settings, root, "http://127.0.0.1:1")
    assert settings.state_dir == root and settings.influx.database == demo.DEMO_DATABASE
    assert settings.spool.dir.is_relative_to(root) and settings.ingest.dead_letter.is_relative_to(root)
    optimization = yaml.safe_load(Path(settings.optimize.rules).read_text())
    for path in (optimization["store"]["path"], optimization["store"]["audit"]):
        assert Path(path).is_relative_to(root), path
    assert Path(settings.alerts.rules).is_relative_to(root)
    assert settings.capital.default == demo.DEMO_CAPITAL
    source = settings.sources[0]
    assert source.type == "simulator" and source.parameters_file == Path(optimization["store"]["path"])

    assert not demo._caught_up(root, 60 * 7200.0)  # no run yet
    (root / demo.CLOCK_FILE).write_text(json.dumps({"clock_ns": time.time_ns() - 3600 * 10**9}))
    assert demo._caught_up(root, 60 * 7200.0)  # 1 h behind, a run of 5 simulated days would reach now
    (root / demo.CLOCK_FILE).write_text(json.dumps({"clock_ns": time.time_ns() - 30 * 86_400 * 10**9}))
    assert not demo._caught_up(root, 60 * 7200.0)


def test_an_unwritable_identity_does_not_stop_the_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "collector"
    (directory / "identity.json.tmp").mkdir(parents=True)  # the write fails, as on a full state disk
    identity.claim(directory, identity.Identity("stratmon", None))
    assert not (directory / "identity.json").exists() and "cannot record" in caplog.text
    shutil.rmtree(directory / "identity.json.tmp")
    identity.claim(directory, identity.Identity("stratmon", None))  # the next start records it
    assert identity.read(directory) == identity.Identity("stratmon", None)
