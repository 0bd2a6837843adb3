"""InfluxDB stops in the middle of an ingest and comes back: every fill lands exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from collector.model import NS
from collector.sources.synthetic import synthetic_fills, write_jsonl
from collector.store.influxd import LocalInfluxd
from collector.store.reader import QueryError, Reader
from collector.store.transport import Endpoint


def _count(reader: Reader) -> int:
    try:
        frame = reader.query("SELECT count(qty) FROM fills")
    except QueryError:
        return 0
    return 0 if frame.empty else int(frame["count"].iloc[0])


def test_influxd_stopped_mid_ingest_loses_nothing(tmp_path: Path) -> None:
    total = 120_000
    path = tmp_path / "fills.jsonl"
    write_jsonl(str(path), synthetic_fills(total, seed=7, start_ns=time.time_ns() - 86_400 * NS))
    server = LocalInfluxd(tmp_path / "influxd")
    state = server.start()
    reader = Reader(Endpoint(url=state.url, database="stratmon"))
    env = os.environ | {
        "STRATMON_INFLUX_URL": state.url,
        "STRATMON_INFLUX_BATCH_SIZE": "500",
        "STRATMON_INFLUX_DRAIN_TIMEOUT": "120",
        "STRATMON_SPOOL_DIR": str(tmp_path / "spool"),
        "STRATMON_INGEST_DEAD_LETTER": str(tmp_path / "dead.jsonl"),
    }
    ingest = subprocess.Popen(
        [sys.executable, "-m", "collector", "ingest", str(path), "--json", "--log-level", "INFO"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while _count(reader) == 0:
            assert time.monotonic() < deadline, "ingest never wrote a point"
            time.sleep(0.02)
        server.stop()
        time.sleep(1.5)
        server.start(port=state.port)
        out, err = ingest.communicate(timeout=240)
    finally:
        ingest.kill()
    try:
        assert ingest.returncode == 0, err
        assert "InfluxDB unavailable" in err and "InfluxDB is back" in err  # the outage really happened mid-run
        assert json.loads(out) == {"accepted": total, "rejected": 0, "duplicates": 0, "written": total}
        assert _count(reader) == total
        ids = reader.query("SELECT count(distinct(fill_id)) FROM fills")
        assert int(ids["count"].iloc[0]) == total
        assert not list((tmp_path / "spool").glob("*.lp"))
    finally:
        reader.close()
        server.stop()
