"""`stratmon influx start|status|stop`: a private influxd on 127.0.0.1 that only its own stop ends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests

from collector.store.influxd import LocalInfluxd


def _stratmon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collector", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )


def test_start_status_stop_cycle(tmp_path: Path) -> None:
    data = tmp_path / "influx"
    started = _stratmon("influx", "start", "--dir", str(data))
    assert started.returncode == 0, started.stderr
    state = LocalInfluxd(data).status()
    assert state is not None and state.url.startswith("http://127.0.0.1:")
    assert f"export STRATMON_INFLUX_URL={state.url}" in started.stdout
    assert requests.get(f"{state.url}/ping", timeout=5).headers["X-Influxdb-Version"].startswith("1.")
    assert (data / "data").is_dir() and (data / "meta").is_dir()

    other = LocalInfluxd(tmp_path / "other")
    other_state = other.start()
    try:
        status = _stratmon("influx", "status", "--dir", str(data))
        assert status.returncode == 0 and state.url in status.stdout

        stopped = _stratmon("influx", "stop", "--dir", str(data))
        assert stopped.returncode == 0 and "stopped" in stopped.stdout
        assert LocalInfluxd(data).status() is None
        # the other instance (another pid) is untouched
        assert requests.get(f"{other_state.url}/ping", timeout=5).status_code == 204
    finally:
        other.stop()
    assert _stratmon("influx", "status", "--dir", str(data)).returncode == 3


def test_start_on_a_chosen_port_and_restart_keeps_data(tmp_path: Path) -> None:
    server = LocalInfluxd(tmp_path / "influx")
    first = server.start()
    requests.post(f"{first.url}/query", data={"q": "CREATE DATABASE keep"}, timeout=5)
    requests.post(f"{first.url}/write", params={"db": "keep"}, data=b"m v=1.5 1000000000000000000", timeout=5)
    server.stop()
    again = server.start(port=first.port)
    try:
        assert again.url == first.url and again.pid != first.pid
        answer = requests.post(f"{again.url}/query", data={"db": "keep", "q": "SELECT v FROM m"}, timeout=5).json()
        assert answer["results"][0]["series"][0]["values"] == [["2001-09-09T01:46:40Z", 1.5]]
    finally:
        server.stop()
