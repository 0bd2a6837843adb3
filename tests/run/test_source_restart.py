"""A source thread that dies is restarted with backoff; /readyz says why meanwhile; nothing is lost."""

from __future__ import annotations

import json
from pathlib import Path

from collector.config import Settings
from collector.run.collector import Collector
from collector.store.reader import Reader
from tests.helpers import fill
from tests.run.conftest import running, scalar, wait_for, with_sources


def test_a_file_tail_killed_by_a_failing_dead_letter_write_comes_back(
    tmp_path: Path, settings: Settings, reader: Reader
) -> None:
    path = tmp_path / "fills.jsonl"
    lines = [json.dumps(fill(fill_id=f"g{i}", ts=f"2024-03-01T14:30:{i:02d}Z")) for i in range(30)]
    lines.insert(10, "{not json")  # rejected: its dead letter cannot be written
    path.write_text("\n".join(lines) + "\n")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the dead-letter directory should be")
    run_settings = with_sources(
        settings,
        {"type": "file", "paths": [str(path)], "batch_lines": 5, "poll_interval": 0.05},
        ingest={"dead_letter": str(blocked / "dead.jsonl")},
    )
    collector = Collector(run_settings)
    with running(collector):
        wait_for(lambda: "restarting" in (collector.problem() or ""), 20, "the failure to show")
        assert "source file failed" in (collector.problem() or "")
        blocked.unlink()  # the disk has room again
        wait_for(lambda: collector.counters.fills_in == 30, 30, "every good fill after the restart")
        wait_for(lambda: collector.problem() is None, 10, "ready again")
    assert (blocked / "dead.jsonl").read_text().count("\n") == 1
    wait_for(lambda: scalar(reader, "SELECT count(distinct(fill_id)) FROM fills") == 30, 30, "the fills stored")
    assert scalar(reader, "SELECT count(qty) FROM fills") == 30
