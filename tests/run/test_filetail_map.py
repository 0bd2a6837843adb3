"""The file source with `map:`: a broker export tailed through its profile; a header without the
mapped columns stops that file loudly (one dead letter, /readyz says why) instead of a flood."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from collector.config import Settings
from collector.run.collector import Collector
from collector.sources.filetail import FileTail
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


def test_tailed_file_whose_records_are_all_skipped_is_logged_once(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(MAPS / "generic-oms.csv", inbox / "day1.csv")  # no Trades section: every line is skipped
    source = {"type": "file", "paths": [str(inbox / "*.csv")], "map": str(MAPS / "ibkr-activity.yaml")}
    collector = Collector(with_sources(settings, source))
    said = "day1.csv gave no fill: its 7 record(s) were skipped as not fills (e.g. not in the 'Trades' section)"
    with caplog.at_level("ERROR", logger="stratmon"), running(collector):
        wait_for(lambda: said in caplog.text, 30, "the file that gave no fill to be logged")
        with (inbox / "day1.csv").open("a") as handle:  # more of the same: read, and not logged again
            handle.write("03/12/2024,09:00:00.000,ACC01,trend_es,ESH4,B,1,5125.25,2.10,EX-2,ORD-9,XCME,5125\n")
        size = (inbox / "day1.csv").stat().st_size
        tail = collector.sources[0]
        assert isinstance(tail, FileTail)
        wait_for(lambda: tail._files[str(inbox / "day1.csv")].offset == size, 30, "the appended line to be read")
    assert caplog.text.count("gave no fill") == 1
    assert f"is {MAPS / 'ibkr-activity.yaml'} the right map for it?" in caplog.text
