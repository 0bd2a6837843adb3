"""InfluxDB goes away while `run` is tailing a file and comes back: nothing is lost, nothing doubled."""

from __future__ import annotations

import time
from pathlib import Path

from collector.config import Settings
from collector.model import NS
from collector.run.collector import Collector
from collector.sources.synthetic import synthetic_fills, write_jsonl
from collector.store.influxd import LocalInfluxd
from collector.store.reader import Reader
from collector.store.transport import Endpoint
from tests.run.conftest import running, scalar, wait_for, with_sources


def test_influxd_down_during_run_loses_nothing(tmp_path: Path, settings: Settings) -> None:
    server = LocalInfluxd(tmp_path / "influxd")
    state = server.start()
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    start = time.time_ns() - 86_400 * NS
    write_jsonl(str(first), synthetic_fills(20_000, seed=3, start_ns=start))
    run_settings = with_sources(
        settings,
        {"type": "file", "paths": [str(tmp_path / "*.jsonl")], "poll_interval": 0.05},
        influx={"url": state.url, "drain_timeout": 60},
    )
    reader = Reader(Endpoint(url=state.url, database=run_settings.influx.database))
    collector = Collector(run_settings)
    try:
        with running(collector):
            wait_for(lambda: collector.counters.fills_in == 20_000, 60, "the first file")
            server.stop()
            # the outage: a second file arrives while InfluxDB is down
            write_jsonl(str(second), synthetic_fills(15_000, seed=4, start_ns=start + 3600 * NS))
            assert collector.writer is not None
            wait_for(lambda: collector.counters.fills_in == 35_000, 60, "the second file, spooled")
            wait_for(lambda: collector.writer is not None and collector.writer.stats.spooled > 0, 30, "spooling")
            server.start(port=state.port)
            wait_for(lambda: collector.writer is not None and collector.writer.spooled_batches() == 0, 90, "replay")
        assert scalar(reader, "SELECT count(qty) FROM fills") == 35_000
        assert scalar(reader, "SELECT count(distinct(fill_id)) FROM fills") == 35_000
        assert scalar(reader, "SELECT last(fills) FROM perf WHERE level = 'portfolio'") == 35_000
        assert collector.writer is not None and collector.writer.stats.write_errors > 0
        assert collector.writer.stats.failed == 0
    finally:
        reader.close()
        server.stop()
