"""A bus-mode deployment as separate processes: router (`stratmon run`), workers, aggregator, on a NATS cluster.

Shared by the SIGKILL fault test (tests/bus/test_faults.py) and the scale benchmark (benchmarks/scale.py):
one config file for every process (a file source, `bus:` on the given cluster, a private influxd's
database), the processes started as the CLI starts them, their CPU seconds from /proc, and the stored
result read back: every fill id with its realized PnL, and the last perf row of every series.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from collector.model import Fill, Mark
from collector.store.influxd import InfluxdState
from collector.store.reader import Reader
from collector.store.transport import Endpoint
from tests.run.conftest import scalar

Row = dict[str, Any]
SeriesKey = tuple[str, str, str]  # (level, account, strategy)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def record(event: Fill | Mark) -> dict[str, Any]:
    """An event as a JSON line of the file source (the fill contract's fields, None left out; a mark's three)."""
    return {name: getattr(event, name) for name in type(event).__slots__ if getattr(event, name) is not None}


def append_events(path: Path, events: Iterable[Fill | Mark]) -> None:
    """Append events as JSON lines to the one file the source tails (one file: the order is the file's)."""
    with open(path, "ab") as handle:
        handle.write(b"".join(orjson.dumps(record(event)) + b"\n" for event in events))


@dataclass
class Deployment:
    """One world: a directory, one config, a database; processes by role ("router", "worker-0-1", ...)."""

    root: Path
    influx: InfluxdState
    database: str
    bus: dict[str, Any] | None  # the `bus:` section; None = the single-process collector
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    supervised: dict[str, tuple[str, ...]] = field(default_factory=dict)  # role → command, restarted on LeaseHeld

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.inbox = self.root / "fills.jsonl"  # tailed from before it exists
        config: dict[str, Any] = {
            "state_dir": str(self.root / "state"),
            "influx": {"url": self.influx.url, "database": self.database},
            "spool": {"dir": str(self.root / "spool")},
            "ingest": {"dead_letter": str(self.root / "dead.jsonl")},
            "sources": [{"type": "file", "paths": [str(self.inbox)]}],
            "jobs": {"enabled": False},
            "alerts": {"enabled": False},
        }
        if self.bus is not None:
            config["bus"] = self.bus
        self.config = self.root / "stratmon.yaml"
        self.config.write_text(yaml.safe_dump(config))
        # reading 200k fills back from a busy influxd takes longer than a write's timeout
        self.reader = Reader(Endpoint(url=self.influx.url, database=self.database, timeout=300.0))

    def start(self, role: str, *command: str) -> subprocess.Popen[bytes]:
        """`stratmon <command…> --config <ours>` as role (its stderr in <role>.log, appended over restarts)."""
        # run.instance names the lease owner: unique per process, as two hosts' processes would be
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRATMON_")} | {"STRATMON_RUN_INSTANCE": role}
        with open(self.root / f"{role}.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "collector", *command, "--config", str(self.config), "--log-level", "INFO"],
                stdout=subprocess.DEVNULL,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        self.processes[role] = process
        return process

    def start_router(self) -> None:
        self.start("router", "run")

    def start_worker(self, first: int, last: int, role: str | None = None) -> str:
        role = role or f"worker-{first}-{last}"
        self.start(role, "worker", "--partitions", f"{first}-{last}")
        return role

    def start_aggregator(self) -> None:
        self.start("aggregator", "aggregate")

    def take_over(self, role: str, *command: str) -> None:
        """Start `command` as role and restart it whenever it stops with LeaseHeld ("is held by"), as a
        supervisor (Docker's restart) would, until a killed owner's lease has expired and it holds it."""
        self.supervised[role] = command
        self.start(role, *command)

    def kill(self, role: str) -> None:
        """SIGKILL: no shutdown, no flush, no lease release."""
        process = self.processes.pop(role)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for role, process in list(self.processes.items()):
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            del self.processes[role]
        self.reader.close()

    def alive(self) -> None:
        """Raise with the log's tail if a process exited on its own (a supervised one waiting for its lease
        is started again)."""
        for role, process in list(self.processes.items()):
            if process.poll() is not None:
                tail = (self.root / f"{role}.log").read_text(errors="replace")[-3000:]
                if role in self.supervised and "is held by" in tail:
                    time.sleep(0.5)
                    self.start(role, *self.supervised[role])
                    continue
                raise RuntimeError(f"{role} exited ({process.returncode}):\n{tail}")

    def cpu(self) -> dict[str, float]:
        return {role: cpu_seconds(process.pid) for role, process in self.processes.items()}

    def feed(self, events: Iterable[Fill | Mark]) -> None:
        append_events(self.inbox, events)

    def scalar(self, query: str) -> float:
        return scalar(self.reader, query)

    def booked(self) -> int:
        """The portfolio's cumulative fill count in InfluxDB (what the aggregator, or the engine, applied)."""
        return int(self.scalar("SELECT last(fills) FROM perf WHERE level = 'portfolio'"))

    def stored(self) -> int:
        return int(self.scalar("SELECT count(qty) FROM fills"))

    def wait(self, condition: Callable[[], bool], timeout: float, what: str, every: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            self.alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.root.name}: no {what} within {timeout:g} s (logs in {self.root})")
            time.sleep(every)

    def settle(self, extra: Iterable[int] = (), quiet: float = 0.05, timeout: float = 180.0) -> None:
        """Wait until every process (and the pids in `extra`) used < `quiet` CPU seconds over one second:
        started up (imports, kernel load) or done (last flush and checkpoint)."""
        pids = [process.pid for process in self.processes.values()] + list(extra)
        deadline = time.monotonic() + timeout
        before = sum(cpu_seconds(pid) for pid in pids)
        while True:
            time.sleep(1.0)
            self.alive()
            now = sum(cpu_seconds(pid) for pid in pids)
            if now - before < quiet or time.monotonic() > deadline:
                return
            before = now

    def _series(self, statement: str) -> list[dict[str, Any]]:
        """The statement's series, refusing a truncated answer (a server row limit would hide rows)."""
        series: list[dict[str, Any]] = []
        for result in self.reader.raw(statement):
            if result.get("partial"):
                raise RuntimeError(f"InfluxDB truncated the answer to {statement!r}")
            series += result.get("series", [])
        return series

    def fills(self) -> dict[str, tuple[int, float]]:
        """fill_id → (times stored, realized PnL) over the `fills` measurement."""
        out: dict[str, tuple[int, float]] = {}
        for series in self._series("SELECT fill_id, realized_pnl FROM fills"):
            at = series["columns"].index("fill_id"), series["columns"].index("realized_pnl")
            for values in series["values"]:
                fill_id, pnl = values[at[0]], values[at[1]]
                out[fill_id] = (out.get(fill_id, (0, 0.0))[0] + 1, pnl)
        return out

    def rows(self) -> dict[SeriesKey, Row]:
        """The last perf row of every series: what a dashboard shows at the end (undefined fields absent)."""
        out: dict[SeriesKey, Row] = {}
        for series in self._series("SELECT last(*) FROM perf GROUP BY level, account, strategy"):
            tags = series["tags"]
            (values,) = series["values"]
            row = dict(zip(series["columns"], values, strict=True))
            out[(tags["level"], tags["account"], tags["strategy"])] = {
                name.removeprefix("last_"): value for name, value in row.items() if name != "time" and value is not None
            }
        return out


def differences(got: dict[SeriesKey, Row], want: dict[SeriesKey, Row], limit: int = 5) -> list[str]:
    """What differs between two sets of series rows (empty when every field of every series is equal)."""
    out = [f"series only in one: {sorted(set(got) ^ set(want))[:limit]}"] if set(got) != set(want) else []
    for key in sorted(set(got) & set(want)):
        if got[key] != want[key]:
            names = sorted(n for n in got[key].keys() | want[key].keys() if got[key].get(n) != want[key].get(n))
            out.append(f"{key}: " + ", ".join(f"{n} {got[key].get(n)!r} != {want[key].get(n)!r}" for n in names[:4]))
        if len(out) >= limit:
            break
    return out
