"""The file source with `map:`: a broker export tailed through its profile; a header without the
mapped columns stops that file loudly (one dead letter, /readyz says why) instead of a flood."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from collector.config import Settings
from collector.run.collector import Collector
from collector.store.reader import Reader
from tests.helpers import read_jsonl
from tests.run.conftest import running, scalar, wait_for, with_sources

MAPS = Path(__file__).resolve().parents[2] / "examples" / "maps"


def test_tailed_export_through_a_map(settings: Settings, reader: Reader, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(MAPS / "generic-oms.csv", inbox / "day1.csv")
    source = {"type": "file", "paths": [str(inbox / "*.csv")], "map": str(MAPS / "generic-oms.yaml")}
    collector = Collector(with_sources(settings, source))
    with running(collector):
        wait_for(lambda: scalar(reader, "SELECT count(qty) FROM fills") == 6, 30, "the six executions")
        rows = "".join("03/12/2024,09:00:00.000,ACC01\n" for _ in range(50))
        (inbox / "day2.csv").write_text("Trade Date,Time,Account\n" + rows)  # another export's layout
        wait_for(lambda: collector.sources[0].problem() is not None, 30, "the bad header to be noticed")
    problem = collector.sources[0].problem()
    assert problem is not None and "the header lacks column(s)" in problem and "'Exec Time'" in problem
    letters = read_jsonl(settings.ingest.dead_letter)
    assert len(letters) == 1 and letters[0]["source"] == f"{inbox / 'day2.csv'}:1"
    realized = scalar(reader, "SELECT sum(realized_pnl) FROM fills")
    assert realized == pytest.approx((3 * 5.75 + 2 * 5.5) * 50 + 4 * 0.17 * 1000, rel=1e-12)
