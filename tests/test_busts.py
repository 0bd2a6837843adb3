"""Busts and corrections through the contract (`action`, `ref_fill_id`): InfluxDB and the report agree."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from collector.config import Settings
from collector.ingest import ingest_files
from collector.model import NS, FillValidator, RejectedRecord
from collector.report import build_report
from collector.store.reader import Reader
from tests.helpers import fill, read_jsonl, write_jsonl


def _stream(t0: int) -> list[dict[str, object]]:
    return [
        fill(ts=t0, fill_id="f1", side="buy", qty=10, price=100.0),
        fill(ts=t0 + NS, fill_id="f2", side="buy", qty=5, price=102.0),  # busted below
        fill(ts=t0 + 2 * NS, fill_id="f3", side="sell", qty=10, price=105.0, fee=1.0),
        fill(ts=t0 + 3 * NS, fill_id="f4", side="sell", qty=5, price=101.0),  # corrected to 5 @ 104
        {"action": "cancel", "ref_fill_id": "f2", "account": "ACC1", "ts": t0 + 10 * NS, "fill_id": "bust-1"},
        fill(ts=t0 + 3 * NS, fill_id="f4c", side="sell", qty=5, price=104.0, action="correct", ref_fill_id="f4"),
    ]


def test_bust_and_correction_rewrite_the_stored_fills(settings: Settings, reader: Reader, tmp_path: Path) -> None:
    t0 = time.time_ns() - 3600 * NS
    path = write_jsonl(tmp_path / "fills.jsonl", _stream(t0))
    summary = ingest_files(settings, [str(path)])
    assert summary.rejected == 0
    frame = reader.query("SELECT fill_id, qty, price, realized_pnl FROM fills").sort_index()
    # f2 is gone and f4 became f4c: f3 closes f1 (+50), f4c opens a short of 5 @ 104
    assert frame["fill_id"].tolist() == ["f1", "f3", "f4c"]
    assert frame["realized_pnl"].tolist() == [0.0, 50.0, 0.0]
    assert frame["price"].tolist() == [100.0, 105.0, 104.0]

    # the same file through the report: the book as if f2 never happened and f4 had been 5 @ 104
    report = build_report(settings, [str(path)])
    book = report.levels("book")["book"][0]
    assert book["realized_pnl"] == 50.0 and book["fills"] == 3 and book["trades"] == 1 and book["fees"] == 1.0
    assert book["net_exposure"] == pytest.approx(-5 * 101.0)  # marks are prices seen: a correction does not move them
    portfolio = report.levels("portfolio")["portfolio"][0]
    assert portfolio["realized_pnl"] == 50.0 and portfolio["volume"] == pytest.approx(1000 + 1050 + 520)


def test_bust_of_an_unknown_fill_is_a_dead_letter(settings: Settings, tmp_path: Path) -> None:
    t0 = time.time_ns() - 60 * NS
    records = [
        fill(ts=t0, fill_id="f1"),
        {"action": "cancel", "ref_fill_id": "nope", "account": "ACC1", "ts": t0 + NS},
    ]
    summary = ingest_files(settings, [str(write_jsonl(tmp_path / "b.jsonl", records))])
    assert (summary.accepted, summary.rejected) == (1, 1)
    letter = read_jsonl(settings.ingest.dead_letter)[0]
    assert letter["error"].startswith("ref_fill_id 'nope' of account 'ACC1' is not among the last 1000 fills")


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"action": "bust", "ref_fill_id": "x"}, "action must be one of fill, cancel, correct, got 'bust'"),
        ({"action": "cancel"}, "missing field 'ref_fill_id'"),
        ({"action": "correct", "ref_fill_id": "x", "qty": -1}, "qty must be > 0, got -1.0"),
    ],
)
def test_revision_records_are_validated(record: dict[str, object], reason: str) -> None:
    with pytest.raises(RejectedRecord, match=reason):
        FillValidator().validate(fill(**record), time.time_ns())
