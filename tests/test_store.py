"""Line protocol, unique timestamps and the InfluxQL reader against the real influxd."""

from __future__ import annotations

import pytest

from collector.config import Settings
from collector.store.connect import open_writer
from collector.store.lineproto import UniqueTimestamps, point
from collector.store.reader import QueryError, Reader


def test_point_escapes_and_skips_undefined_fields() -> None:
    line = point(
        "perf",
        {"strategy": "a b", "account": "x,y", "level": "book"},
        {"sharpe": None, "equity": 1.0, "trades": 3, "note": 'say "hi"\\'},
        5,
    )
    assert line == 'perf,account=x\\,y,level=book,strategy=a\\ b equity=1.0,trades=3i,note="say \\"hi\\"\\\\" 5'
    with pytest.raises(ValueError, match="at least one field"):
        point("perf", {}, {"sharpe": None}, 1)


def test_unique_timestamps_are_deterministic_and_distinct() -> None:
    first, second = UniqueTimestamps(), UniqueTimestamps()
    ts = 1_700_000_000_000_000_000
    ids = [f"fill-{i}" for i in range(2000)]
    a = [first.assign("s", ts, i) for i in ids]
    b = [second.assign("s", ts, i) for i in ids]
    assert a == b  # a second process assigns the same keys: re-writes are idempotent
    assert len(set(a)) == len(a)
    assert all(ts <= t < ts + 1000 + len(ids) for t in a)
    assert first.assign("s", ts, "fill-7") == a[7]  # the same fill again keeps its key
    assert first.assign("other", ts + 17, "x") == ts + 17  # ns-precise input is kept as is


def test_unique_timestamps_memory_is_bounded() -> None:
    stamps = UniqueTimestamps(capacity=100)
    for i in range(1000):
        stamps.assign("s", i * 1000, str(i))
    assert len(stamps) == 100


def test_points_through_writer_and_reader(settings: Settings, reader: Reader) -> None:
    writer = open_writer(settings)
    writer.write(point("perf", {"level": "portfolio", "account": "_all", "strategy": "_all"}, {"equity": 12.5}, 10**18))
    writer.write(point("perf", {"level": "book", "account": "A", "strategy": "s"}, {"equity": -3.25}, 10**18))
    writer.close()
    frame = reader.query('SELECT equity FROM perf WHERE "level" = \'book\' GROUP BY "account", "strategy"')
    assert frame["equity"].tolist() == [-3.25]
    assert frame[["account", "strategy"]].values.tolist() == [["A", "s"]]
    values = reader.query('SHOW TAG VALUES FROM perf WITH KEY = "level"')
    assert sorted(values["value"]) == ["book", "portfolio"]
    assert reader.query("SELECT equity FROM nothing_here").empty


def test_reader_surfaces_server_errors(reader: Reader) -> None:
    with pytest.raises(QueryError, match="error parsing query"):
        reader.query("SELECT FROM WHERE")
