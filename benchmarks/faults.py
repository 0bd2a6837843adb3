"""Fault suite: inject each fault into a real `stratmon run` against a private influxd, count what survived.

For every fault: the fills sent (for the HTTP intake: the ones answered 200; for files: every
line), how many distinct fill_ids InfluxDB holds afterwards, how many of the sent ones are
missing (lost) and how many points exceed the distinct ids (duplicated), and whether the
engine saw exactly what is stored (the portfolio's `fills` metric). Each fault gets its own
database and state directory.

    .venv/bin/python benchmarks/faults.py [--only NAME ...] [--fills N]

Prints one line per fault and then `faults N, fills sent S, stored S', lost L, duplicated D`.
Exit status 1 when anything was lost or duplicated.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from collector.store.influxd import InfluxdState, LocalInfluxd
from collector.store.reader import QueryError, Reader
from collector.store.transport import Endpoint

TOKEN = "fault-suite-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRETS = (TOKEN,)  # must never appear in a log line


@dataclass
class Outcome:
    name: str
    sent: set[str]
    stored: int  # points
    distinct: set[str]
    engine_fills: int

    @property
    def lost(self) -> int:
        return len(self.sent - self.distinct)

    @property
    def duplicated(self) -> int:
        return self.stored - len(self.distinct)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fill(fill_id: str, i: int, account: str = "ACC1") -> dict[str, Any]:
    return {
        "ts": 1_709_301_600_000_000_000 + i * 1_000_000,
        "account": account,
        "strategy": f"s{i % 7}",
        "symbol": f"SYM{i % 5}",
        "side": "buy" if (i // 3) % 2 == 0 else "sell",
        "qty": 1.0 + i % 4,
        "price": 100.0 + (i % 11),
        "fill_id": fill_id,
    }


class Case:
    """One fault's world: a config, a state dir, a database, `stratmon run` processes and their log."""

    def __init__(
        self, root: Path, influx: InfluxdState, name: str, sources: list[dict[str, Any]], **extra: Any
    ) -> None:
        self.name = name
        self.dir = root / name
        self.dir.mkdir(parents=True)
        self.database = "f_" + name.replace("-", "_")
        self.port = _free_port()
        self.log = self.dir / "run.log"
        for source in sources:
            if source["type"] == "http":
                source["port"] = self.port
        config = {
            "state_dir": str(self.dir / "state"),
            "influx": {"url": influx.url, "database": self.database, "timeout": 2, "drain_timeout": 5},
            "spool": {"dir": str(self.dir / "spool")},
            "ingest": {"dead_letter": str(self.dir / "dead.jsonl")},
            "sources": sources,
            "run": {"snapshot_interval": 0.5, "flush_interval": 0.1},
            "jobs": {"enabled": False},
            "alerts": {"enabled": False},
        } | extra
        self.config = self.dir / "stratmon.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{self.port}"
        self.reader = Reader(Endpoint(url=influx.url, database=self.database))

    def start(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRATMON_")} | {"STRATMON_HTTP_TOKEN": TOKEN}
        with open(self.log, "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "collector", "run", "--config", str(self.config), "--log-level", "INFO"],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
            )

    def scalar(self, query: str) -> float:
        try:
            frame = self.reader.query(query)
        except QueryError:
            return 0.0
        return 0.0 if frame.empty else float(frame.to_numpy()[0, 0])

    def ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: timed out waiting for {what}")
            time.sleep(0.05)

    def stored(self) -> int:
        return int(self.scalar("SELECT count(qty) FROM fills"))

    def settle(self, expected: int, timeout: float = 120) -> None:
        """Run once more until the engine has seen `expected` fills (or time runs out), then stop cleanly."""
        final = self.start()
        try:
            engine = "SELECT last(fills) FROM perf WHERE level = 'portfolio'"
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.scalar(engine) < expected:
                time.sleep(0.2)
            time.sleep(1.0)  # anything left in flight
            final.send_signal(signal.SIGTERM)
            final.wait(60)
        finally:
            final.kill()

    def outcome(self, sent: set[str]) -> Outcome:
        frame = self.reader.query("SELECT fill_id, qty FROM fills")
        distinct = set(frame["fill_id"]) if not frame.empty else set()
        engine = int(self.scalar("SELECT last(fills) FROM perf WHERE level = 'portfolio'"))
        return Outcome(self.name, sent, self.stored(), distinct, engine)


def _post_until(case: Case, acked: set[str], stop: threading.Event, prefix: str, size: int = 100) -> None:
    session = requests.Session()
    r = 0
    while not stop.is_set():
        ids = [f"{prefix}-{r}-{i}" for i in range(size)]
        body = [_fill(x, r * size + i) for i, x in enumerate(ids)]
        try:
            answer = session.post(f"{case.url}/v1/fills", json=body, headers=AUTH, timeout=10)
        except requests.RequestException:
            time.sleep(0.05)
            r += 1
            continue
        if answer.status_code == 200:
            acked.update(ids)
        elif answer.status_code == 503:
            time.sleep(float(answer.headers.get("Retry-After", "1")) / 10)
            continue  # the same ids again, as a client honouring Retry-After would
        r += 1


# ---- the faults ---------------------------------------------------------------------------------
def http_kill9(root: Path, influx: InfluxdState, fills: int) -> Outcome:
    """kill -9 of `stratmon run` twice while two clients post to the HTTP intake."""
    case = Case(root, influx, "http-kill9", [{"type": "http"}])
    acked: set[str] = set()
    for round_ in range(2):
        process = case.start()
        case.wait(case.ready, 60, "the intake")
        stop = threading.Event()
        clients = [threading.Thread(target=_post_until, args=(case, acked, stop, f"k{round_}{c}")) for c in (0, 1)]
        for client in clients:
            client.start()
        target = (round_ + 1) * fills // 2
        case.wait(lambda: len(acked) >= target, 120, "acknowledged fills")  # noqa: B023 - read at once
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        stop.set()
        for client in clients:
            client.join()
    case.settle(len(acked))
    return case.outcome(acked)


def file_kill9(root: Path, influx: InfluxdState, fills: int) -> Outcome:
    """kill -9 in the middle of tailing a file, then a restart."""
    path = root / "file-kill9.jsonl"
    ids = [f"fk-{i}" for i in range(fills)]
    path.write_text("".join(json.dumps(_fill(x, i)) + "\n" for i, x in enumerate(ids)))
    case = Case(root, influx, "file-kill9", [{"type": "file", "paths": [str(path)], "batch_lines": 200}])
    process = case.start()
    case.wait(lambda: case.stored() >= fills // 3, 120, "a third of the fills")
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    case.settle(fills)
    return case.outcome(set(ids))


def influx_down_spool_full(root: Path, influx: InfluxdState, fills: int) -> Outcome:
    """InfluxDB stopped while clients post, with a 1 MiB spool: it fills, the intake answers 503, nothing is lost."""
    spool = {"dir": str(root / "spool-full-spool"), "max_bytes": 1 << 20}
    case = Case(root, influx, "spool-full", [{"type": "http"}], spool=spool)
    process = case.start()
    case.wait(case.ready, 60, "the intake")
    acked: set[str] = set()
    stop = threading.Event()
    client = threading.Thread(target=_post_until, args=(case, acked, stop, "sp"))
    client.start()
    time.sleep(1)
    server = LocalInfluxd(Path(influx.dir))
    server.stop()
    try:
        case.wait(lambda: "writes paused" in _readyz(case), 60, "the spool to fill up")
        time.sleep(3)  # clients keep getting 503 with Retry-After meanwhile
    finally:
        server.start(port=influx.port)
    case.wait(case.ready, 60, "writes resuming")
    stop.set()
    client.join()
    process.send_signal(signal.SIGTERM)
    process.wait(120)
    case.settle(len(acked))
    return case.outcome(acked)


def _readyz(case: Case) -> str:
    try:
        return requests.get(f"{case.url}/readyz", timeout=1).text
    except requests.RequestException:
        return ""


def file_truncate_refill(root: Path, influx: InfluxdState, fills: int) -> Outcome:
    """A file truncated and refilled with more lines than before, between two polls and while down."""
    path = root / "refill.jsonl"
    first = [f"r1-{i}" for i in range(fills // 4)]
    second = [f"r2-{i}" for i in range(fills // 4 + fills // 10)]
    third = [f"r3-{i}" for i in range(fills // 4 + fills // 5)]
    path.write_text("".join(json.dumps(_fill(x, i)) + "\n" for i, x in enumerate(first)))
    source = {"type": "file", "paths": [str(path)], "poll_interval": 1.0}
    case = Case(root, influx, "truncate-refill", [source])
    process = case.start()
    case.wait(lambda: case.stored() >= len(first), 60, "the first generation")
    with open(path, "r+") as handle:  # copytruncate + refill within one poll interval
        handle.truncate(0)
        handle.write("".join(json.dumps(_fill(x, i, "ACC2")) + "\n" for i, x in enumerate(second)))
    case.wait(lambda: case.stored() >= len(first) + len(second), 60, "the refill")
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    with open(path, "r+") as handle:  # and again while the collector is down
        handle.truncate(0)
        handle.write("".join(json.dumps(_fill(x, i, "ACC3")) + "\n" for i, x in enumerate(third)))
    case.settle(len(first) + len(second) + len(third))
    return case.outcome(set(first + second + third))


def corrupted_checkpoint(root: Path, influx: InfluxdState, fills: int) -> Outcome:
    """A random byte of the checkpoint flipped, plus invalid UTF-8 in the duplicate-id journal, between runs."""
    path = root / "corrupt.jsonl"
    ids = [f"cc-{i}" for i in range(fills)]
    path.write_text("".join(json.dumps(_fill(x, i)) + "\n" for i, x in enumerate(ids[: fills // 2])))
    case = Case(root, influx, "corrupt-checkpoint", [{"type": "file", "paths": [str(path)]}])
    process = case.start()
    case.wait(lambda: case.stored() >= fills // 2, 60, "the first half")
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    state = case.dir / "state" / "collector"
    checkpoint = state / "checkpoint.json"
    raw = bytearray(checkpoint.read_bytes())
    at = random.Random(7).randrange(len(raw))
    raw[at] ^= 0x5A
    checkpoint.write_bytes(bytes(raw))
    for journal in state.glob("seen-ids.*.log"):
        with open(journal, "ab") as handle:
            handle.write(b"ACC1\t\xff\xfe\n")
    with open(path, "a") as handle:
        handle.write("".join(json.dumps(_fill(x, fills // 2 + i)) + "\n" for i, x in enumerate(ids[fills // 2 :])))
    case.settle(fills)
    return case.outcome(set(ids))


def dead_letter_unwritable(root: Path, influx: InfluxdState, fills: int) -> Outcome:
    """The dead-letter file cannot be written for a while: the file tail dies, is restarted, catches up."""
    path = root / "deadletter.jsonl"
    ids = [f"dl-{i}" for i in range(fills)]
    lines = [json.dumps(_fill(x, i)) for i, x in enumerate(ids)]
    for at in range(len(lines) // 3, len(lines), len(lines) // 3):
        lines.insert(at, "{broken")
    path.write_text("\n".join(lines) + "\n")
    blocked = root / "deadletter-blocked"
    blocked.write_text("a file where the dead-letter directory belongs")
    case = Case(
        root,
        influx,
        "deadletter-unwritable",
        [{"type": "file", "paths": [str(path)], "batch_lines": 100}],
        ingest={"dead_letter": str(blocked / "dead.jsonl")},
    )
    process = case.start()
    case.wait(lambda: "restarting in" in case.log.read_text(), 60, "the file tail to fail at the first reject")
    time.sleep(3)  # restarted with backoff, it fails again while the disk stays "full"
    blocked.unlink()
    try:
        case.wait(lambda: case.stored() >= fills, 60, "every good fill")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    case.settle(fills)
    return case.outcome(set(ids))


def state_disk_full(root: Path, influx: InfluxdState, fills: int) -> Outcome:
    """The disk holding the state (intake journal, checkpoint, spool) fills up while clients post, then frees.

    Needs the right to mount a tmpfs; elsewhere the fault is reported as skipped (nothing sent).
    """
    disk = root / "small-disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        print(f"disk-full: skipped (cannot mount a tmpfs: {mounted.stderr.decode().strip()})")
        return Outcome("disk-full", set(), 0, set(), 0)
    try:
        case = Case(
            root,
            influx,
            "disk-full",
            [{"type": "http"}],
            state_dir=str(disk / "state"),
            spool={"dir": str(disk / "spool")},
        )
        ballast = disk / "ballast"
        process = case.start()
        case.wait(case.ready, 60, "the intake")
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        ballast.write_bytes(b"\0" * max(0, free - (1 << 20)))  # leave 1 MiB
        acked: set[str] = set()
        stop = threading.Event()
        client = threading.Thread(target=_post_until, args=(case, acked, stop, "df"))
        client.start()
        case.wait(lambda: "No space left" in case.log.read_text(), 60, "the disk to fill up")
        time.sleep(2)  # clients get 503 meanwhile
        ballast.unlink()
        time.sleep(3)
        stop.set()
        client.join()
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        case.settle(len(acked))
        return case.outcome(acked)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


FAULTS: dict[str, Callable[[Path, InfluxdState, int], Outcome]] = {
    "http-kill9": http_kill9,
    "file-kill9": file_kill9,
    "spool-full": influx_down_spool_full,
    "truncate-refill": file_truncate_refill,
    "corrupt-checkpoint": corrupted_checkpoint,
    "deadletter-unwritable": dead_letter_unwritable,
    "disk-full": state_disk_full,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(FAULTS), help="run only these faults")
    parser.add_argument("--fills", type=int, default=4000, help="fills per fault (roughly)")
    parser.add_argument("--keep", type=Path, help="work in this (new) directory and keep it: configs, logs, state")
    args = parser.parse_args()
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="stratmon-faults-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        server = LocalInfluxd(root / "influxd")
        influx = server.start()
        try:
            for name in args.only or FAULTS:
                started = time.monotonic()
                outcome = FAULTS[name](root, influx, args.fills)
                outcomes.append(outcome)
                seen = (
                    "engine = stored"
                    if outcome.engine_fills == len(outcome.distinct)
                    else (f"engine saw {outcome.engine_fills}")
                )
                print(
                    f"{name:22s} sent {len(outcome.sent):6d}  stored {len(outcome.distinct):6d}  lost {outcome.lost}"
                    f"  duplicated {outcome.duplicated}  {seen}  ({time.monotonic() - started:.0f} s)",
                    flush=True,
                )
            leaks = [
                f"{log.parent.name}: {secret[:6]}…"
                for log in root.glob("*/run.log")
                for secret in SECRETS
                if secret in log.read_text(errors="replace")
            ]
        finally:
            server.stop()
    sent = sum(len(o.sent) for o in outcomes)
    stored = sum(len(o.distinct) for o in outcomes)
    lost = sum(o.lost for o in outcomes)
    duplicated = sum(o.duplicated for o in outcomes)
    print(f"faults {len(outcomes)}, fills sent {sent}, stored {stored}, lost {lost}, duplicated {duplicated}")
    if leaks:
        print(f"secrets in logs: {', '.join(leaks)}")
    return 1 if lost or duplicated or leaks else 0


if __name__ == "__main__":
    sys.exit(main())
