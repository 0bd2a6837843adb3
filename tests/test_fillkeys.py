"""Distinct fill ids never overwrite each other in InfluxDB, across separate processes; stored fills carry PnL."""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import pytest

from collector.config import Settings
from collector.engine.engine import Engine
from collector.ingest import ingest_files
from collector.model import NS, Fill
from collector.store.reader import Reader
from tests.helpers import fill, write_jsonl


def _stored(reader: Reader) -> list[tuple[str, float]]:
    frame = reader.query("SELECT fill_id, qty FROM fills")
    return sorted(zip(frame["fill_id"], frame["qty"], strict=True))


def test_same_nanosecond_from_two_ingest_runs_keeps_both(settings: Settings, reader: Reader, tmp_path: Path) -> None:
    ts = time.time_ns() // NS * NS - 60 * NS + 123_456_789  # ns-precise: no crc offset applies
    first = write_jsonl(tmp_path / "a.jsonl", [fill(ts=ts, fill_id="f1", qty=50)])
    second = write_jsonl(tmp_path / "b.jsonl", [fill(ts=ts, fill_id="f2", qty=100)])
    assert ingest_files(settings, [str(first)]).written == 1
    assert ingest_files(settings, [str(second)]).written == 1
    assert _stored(reader) == [("f1", 50.0), ("f2", 100.0)]
    # re-ingesting either file is idempotent: each id keeps its key
    ingest_files(settings, [str(second)])
    ingest_files(settings, [str(first)])
    assert _stored(reader) == [("f1", 50.0), ("f2", 100.0)]
    assert reader.query("SELECT sum(qty) FROM fills")["sum"].tolist() == [150.0]


def test_crc_slot_collision_with_millisecond_timestamps(settings: Settings, reader: Reader, tmp_path: Path) -> None:
    slots: dict[int, str] = {}
    pair: tuple[str, str] | None = None
    for i in range(5000):  # two ids whose crc32 offsets coincide (1 in 1,000 per pair)
        fill_id = f"id-{i}"
        slot = zlib.crc32(fill_id.encode()) % 1000
        if slot in slots:
            pair = (slots[slot], fill_id)
            break
        slots[slot] = fill_id
    assert pair is not None
    ts = time.time_ns() // 1_000_000 * 1_000_000 - 60 * NS
    for n, fill_id in enumerate(pair):
        path = write_jsonl(tmp_path / f"{n}.jsonl", [fill(ts=ts, fill_id=fill_id, qty=n + 1)])
        ingest_files(settings, [str(path)])
    assert _stored(reader) == sorted([(pair[0], 1.0), (pair[1], 2.0)])


def test_ingest_stores_realized_pnl_and_multiplier_that_reproduce_the_metrics(
    settings: Settings, reader: Reader, tmp_path: Path
) -> None:
    t0 = time.time_ns() - 3600 * NS
    records = [
        fill(ts=t0, fill_id="1", symbol="ES", side="buy", qty=2, price=5000, multiplier=50, fee=2.5),
        fill(ts=t0 + NS, fill_id="2", symbol="ES", side="sell", qty=1, price=5010, multiplier=50, fee=1.25),
        fill(ts=t0 + 2 * NS, fill_id="3", symbol="ES", side="sell", qty=1, price=4990, multiplier=50, fee=1.25),
    ]
    ingest_files(settings, [str(write_jsonl(tmp_path / "es.jsonl", records))])
    frame = reader.query("SELECT * FROM fills").sort_index()
    assert frame["realized_pnl"].tolist() == [0.0, 500.0, -500.0]  # 1 × 10 × 50, 1 × −10 × 50
    assert frame["multiplier"].tolist() == [50.0, 50.0, 50.0]
    # the stored fills alone rebuild the same book as the input did
    engine = Engine()
    for row in frame.reset_index().to_dict("records"):
        engine.on_fill(
            Fill(
                int(row["time"].value),
                str(row["account"]),
                str(row["strategy"]),
                str(row["symbol"]),
                str(row["side"]),
                float(row["qty"]),
                float(row["price"]),
                str(row["fill_id"]),
                float(row["fee"]),
                multiplier=float(row["multiplier"]),
            )
        )
    book = engine.row(engine.series[("book", "ACC1", "trend_es")])
    assert book["realized_pnl"] == pytest.approx(sum(frame["realized_pnl"]))
    assert book["equity"] == pytest.approx(0.0 - 5.0)
    assert book["volume"] == pytest.approx((2 * 5000 + 5010 + 4990) * 50)


def test_batches_over_many_series_read_one_time_range(settings: Settings, reader: Reader, tmp_path: Path) -> None:
    """More series than one request holds: the stored keys come from one scan (GROUP BY *), same result."""
    ts = time.time_ns() // NS * NS - 60 * NS + 987_654_321
    for run in ("a", "b"):
        records = [fill(ts=ts, fill_id=f"{run}{i}", symbol=f"S{i}", qty=1) for i in range(300)]
        assert ingest_files(settings, [str(write_jsonl(tmp_path / f"{run}.jsonl", records))]).written == 300
    assert reader.query("SELECT count(qty) FROM fills")["count"].tolist() == [600]
    ingest_files(settings, [str(tmp_path / "a.jsonl")])  # again: idempotent
    assert reader.query("SELECT count(qty) FROM fills")["count"].tolist() == [600]
