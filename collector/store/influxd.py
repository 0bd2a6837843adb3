"""A private `influxd` (Debian's 1.6.7 or any 1.x on PATH): own data dir, 127.0.0.1, free ports.

Used by `stratmon influx start|stop|status`, by the demo, and by the pytest fixture, so the
tests run exactly what a user runs. State (pid, url) lives in `<dir>/influxd.json`; `stop`
only ever signals that recorded pid, and only while it still is an influxd.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from collector.errors import UserError

DEFAULT_DIR = Path(".stratmon/influxdb")

_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{dir}/meta"
[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  query-log-enabled = false
  index-version = "inmem"
[http]
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
  pprof-enabled = false
  max-body-size = 0
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
[logging]
  level = "warn"
  suppress-logo = true
"""


@dataclass
class InfluxdState:
    pid: int
    port: int
    url: str
    dir: str


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _is_influxd(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"influxd" in cmdline


def _ping(url: str, timeout: float = 1.0) -> bool:
    try:
        return requests.get(f"{url}/ping", timeout=timeout).status_code == 204
    except requests.RequestException:
        return False


class LocalInfluxd:
    def __init__(self, directory: Path | str = DEFAULT_DIR) -> None:
        self.dir = Path(directory).absolute()
        self.state_file = self.dir / "influxd.json"

    def status(self) -> InfluxdState | None:
        """The running instance of this directory, or None (a stale state file is removed)."""
        try:
            state = InfluxdState(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        if _is_influxd(state.pid):
            return state
        self.state_file.unlink(missing_ok=True)
        return None

    def start(self, port: int | None = None, timeout: float = 30.0) -> InfluxdState:
        running = self.status()
        if running is not None:
            return running
        binary = shutil.which("influxd")
        if binary is None:
            raise UserError(
                "influxd not found on PATH; install it with `make influxd` (Debian: apt-get install influxdb)"
            )
        port = port or free_port()
        self.dir.mkdir(parents=True, exist_ok=True)
        config = self.dir / "influxdb.conf"
        config.write_text(_CONFIG.format(dir=self.dir, port=port, rpc_port=free_port()))
        log_file = open(self.dir / "influxd.log", "ab")  # noqa: SIM115 - handed to the child process
        process = subprocess.Popen(
            [binary, "run", "-config", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # not killed with the shell that started it; `stop` ends it
        )
        log_file.close()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while not _ping(url, timeout=0.5):
            if process.poll() is not None:
                tail = (self.dir / "influxd.log").read_text(errors="replace")[-800:]
                raise UserError(f"influxd exited with status {process.returncode}; its log says:\n{tail}")
            if time.monotonic() > deadline:
                process.kill()
                raise UserError(f"influxd did not answer {url}/ping within {timeout:g} s")
            time.sleep(0.05)
        state = InfluxdState(pid=process.pid, port=port, url=url, dir=str(self.dir))
        self.state_file.write_text(json.dumps(asdict(state)))
        return state

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop the recorded instance; True when one was running."""
        state = self.status()
        if state is None:
            return False
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _is_influxd(state.pid) and time.monotonic() < deadline:
            _reap(state.pid)
            time.sleep(0.05)
        if _is_influxd(state.pid):
            os.kill(state.pid, signal.SIGKILL)
            time.sleep(0.1)
            _reap(state.pid)
        self.state_file.unlink(missing_ok=True)
        return True


def _reap(pid: int) -> None:
    """Collect the exit status when influxd is our own child (tests), so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
