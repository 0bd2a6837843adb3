"""HTTP 200 means durable: kill -9 of `stratmon run` while clients post, twice, loses no acknowledged fill."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
import yaml

from collector.config import Settings
from collector.store.reader import Reader
from tests.helpers import fill
from tests.run.conftest import scalar, wait_for

TOKEN = "durable-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATMON_")} | {"STRATMON_HTTP_TOKEN": TOKEN}
    return subprocess.Popen(
        [sys.executable, "-m", "collector", "run", "--config", str(config), "--log-level", "INFO"],
        stdout=subprocess.DEVNULL,
        stderr=open(log, "ab"),
        env=env,
    )


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def _post_until_killed(url: str, acked: set[str], stop: threading.Event, round_: int) -> None:
    """Post 100-fill requests; remember the ids of every request answered 200."""
    session = requests.Session()
    r = 0
    while not stop.is_set():
        ids = [f"k{round_}-{r}-{i}" for i in range(100)]
        body = [
            fill(fill_id=x, ts=f"2024-03-01T14:{r % 60:02d}:{i % 60:02d}Z", qty=1 + i % 3) for i, x in enumerate(ids)
        ]
        try:
            answer = session.post(f"{url}/v1/fills", json=body, headers=AUTH, timeout=5)
        except requests.RequestException:
            return  # the server died mid-request: that request was not acknowledged
        if answer.status_code == 200:
            assert answer.json()["accepted"] == 100
            acked.update(ids)
        r += 1


def test_kill_9_twice_loses_no_acknowledged_fill(tmp_path: Path, settings: Settings, reader: Reader) -> None:
    port = _free_port()
    config = tmp_path / "stratmon.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp_path / "state"),
                "influx": {"url": settings.influx.url, "database": settings.influx.database},
                "spool": {"dir": str(tmp_path / "spool")},
                "ingest": {"dead_letter": str(tmp_path / "dead.jsonl")},
                "sources": [{"type": "http", "port": port}],
                "run": {"snapshot_interval": 0.4, "flush_interval": 0.1},
                "jobs": {"enabled": False},
                "alerts": {"enabled": False},
            }
        )
    )
    url, log = f"http://127.0.0.1:{port}", tmp_path / "run.log"
    acked: set[str] = set()
    for round_ in range(2):
        process = _start(config, log)
        try:
            wait_for(lambda: _ready(url), 60, "the intake")
            stop = threading.Event()
            posting = [
                threading.Thread(target=_post_until_killed, args=(url, acked, stop, round_ * 10 + c)) for c in (0, 1)
            ]
            for thread in posting:
                thread.start()
            time.sleep(2.5)  # several checkpoints, and requests acknowledged after the last one
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            stop.set()
            for thread in posting:
                thread.join()
        finally:
            process.kill()
    assert len(acked) >= 1000, "too few requests were acknowledged to test anything"

    final = _start(config, log)
    try:
        wait_for(lambda: _ready(url), 60, "the intake after two kills")
        wait_for(lambda: scalar(reader, "SELECT count(distinct(fill_id)) FROM fills") >= len(acked), 60, "the fills")
        final.send_signal(signal.SIGTERM)
        assert final.wait(60) == 0
    finally:
        final.kill()
    stored = set(reader.query("SELECT fill_id, qty FROM fills")["fill_id"])
    count = scalar(reader, "SELECT count(qty) FROM fills")
    assert acked <= stored, f"{len(acked - stored)} acknowledged fills lost"
    assert count == len(stored), f"{count - len(stored)} fills doubled"
    assert len(stored - acked) <= 2 * 2 * 100  # at most the requests in flight at each kill (never acknowledged)
    # the engine saw exactly what is stored: its fill count is the number of stored fills
    assert scalar(reader, "SELECT last(fills) FROM perf WHERE level = 'portfolio'") == len(stored)
    assert "replayed" in log.read_text()
