"""Ingest against the real private influxd: exact read-back, dead letters, idempotence, CLI contract."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.config import Settings
from collector.ingest import ingest_files
from collector.model import NS
from collector.sources.synthetic import synthetic_fills
from collector.store.reader import Reader, escape_string
from tests.helpers import fill, read_jsonl, write_jsonl


def _fills_frame(reader: Reader):
    return reader.query("SELECT * FROM fills GROUP BY *")


def test_ingest_then_read_back_every_value(settings: Settings, reader: Reader, tmp_path: Path) -> None:
    records = list(synthetic_fills(500, seed=3, start_ns=time.time_ns() - 3600 * NS))
    path = write_jsonl(tmp_path / "fills.jsonl", records)
    summary = ingest_files(settings, [str(path)])
    assert summary.contract() == {"accepted": 500, "rejected": 0, "duplicates": 0, "written": 500}

    frame = _fills_frame(reader)
    assert len(frame) == 500
    by_id = {row.fill_id: row for row in frame.reset_index().itertuples()}
    for record in records:
        row = by_id[record["fill_id"]]
        assert row.account == record["account"] and row.strategy == record["strategy"]
        assert row.symbol == record["symbol"] and row.side == record["side"]
        assert row.qty == record["qty"] and row.price == record["price"] and row.fee == record["fee"]
        assert row.notional == record["qty"] * record["price"]
        assert row.order_id == record["order_id"]
        # the stored time keeps the input's microseconds; only sub-µs digits make it unique
        stored_ns = row.time.value
        assert stored_ns // 1000 == record["ts"] // 1000
        if "arrival_price" in record:
            side = 1 if record["side"] == "buy" else -1
            expected = side * (record["price"] - record["arrival_price"]) / record["arrival_price"] * 1e4
            assert row.slippage_bps == pytest.approx(expected, rel=1e-12)
            assert row.latency_ms == pytest.approx((record["ts"] - record["order_ts"]) / 1e6, rel=1e-12)
        else:
            assert pd.isna(row.slippage_bps) and pd.isna(row.latency_ms)  # absent fields


def test_bad_records_go_to_dead_letter_and_neighbours_survive(
    settings: Settings, reader: Reader, tmp_path: Path
) -> None:
    now = time.time_ns()
    lines: list[dict[str, object] | str] = [
        fill(fill_id="good-1", ts=now - NS),
        "{not json",
        fill(fill_id="bad-qty", ts=now - NS, qty=-1),
        fill(fill_id="good-2", ts=now - NS),
        '["an", "array"]',
        fill(fill_id="bad-ts", ts="2024-13-01T00:00:00Z"),
        fill(fill_id="good-3", ts=now - NS, symbol="BTC/USD"),
        fill(fill_id="good-1", ts=now - NS),  # duplicate: counted, not dead-lettered
    ]
    path = write_jsonl(tmp_path / "mixed.jsonl", lines)
    with open(path, "ab") as handle:
        handle.write(b'{"account": "\xff\xfe"}\n')
    summary = ingest_files(settings, [str(path)])
    assert summary.contract() == {"accepted": 3, "rejected": 5, "duplicates": 1, "written": 3}

    letters = read_jsonl(settings.ingest.dead_letter)
    assert [set(letter) for letter in letters] == [{"received_at", "source", "raw", "error"}] * 5
    assert [letter["source"] for letter in letters] == [f"{path}:{n}" for n in (2, 3, 5, 6, 9)]
    errors = [letter["error"] for letter in letters]
    assert errors[0].startswith("invalid JSON")
    assert "qty must be > 0" in errors[1]
    assert errors[2] == "expected a JSON object, got array"
    assert "not a valid date/time" in errors[3]
    assert errors[4] == "invalid UTF-8 at byte 13"
    assert letters[1]["raw"] == json.dumps(lines[2])

    ids = sorted(reader.query("SELECT fill_id FROM fills")["fill_id"])
    assert ids == ["good-1", "good-2", "good-3"]


def test_invalid_utf8_and_csv_column_count(settings: Settings, reader: Reader, tmp_path: Path) -> None:
    now = time.time_ns()
    csv_path = tmp_path / "fills.csv"
    csv_path.write_text(
        "ts,account,strategy,symbol,side,qty,price,fill_id,fee\n"
        f"{now - NS},A1,s1,ES,buy,1,100.5,c-1,0.1\n"
        f"{now - NS},A1,s1,ES,sell,1,100.5\n"
        f"{now - NS},A1,s1,ES,sell,1,101.5,c-2,\n"
    )
    bad_utf8 = tmp_path / "latin1.jsonl"
    bad_utf8.write_bytes(json.dumps(fill(account="ACC1")).encode()[:-2] + b'\xe9"}\n')
    summary = ingest_files(settings, [str(csv_path), str(bad_utf8)])
    assert (summary.accepted, summary.rejected) == (2, 2)
    errors = [letter["error"] for letter in read_jsonl(settings.ingest.dead_letter)]
    assert errors[0] == "CSV row has 7 columns; the header has 9"
    assert errors[1].startswith("invalid UTF-8 at byte")
    frame = reader.query("SELECT fee, price FROM fills")
    assert sorted(frame["fee"]) == [0.0, 0.1] and sorted(frame["price"]) == [100.5, 101.5]


def test_reingest_is_idempotent(settings: Settings, reader: Reader, tmp_path: Path) -> None:
    # partial fills of one order at the same millisecond: same series, same input timestamp
    ts = (time.time_ns() - 60 * NS) // 1_000_000 * 1_000_000
    records = [fill(ts=ts, fill_id=f"p-{i}", qty=float(i + 1)) for i in range(50)]
    path = write_jsonl(tmp_path / "partials.jsonl", records)
    ingest_files(settings, [str(path)])
    first = reader.query("SELECT count(qty), sum(qty) FROM fills")
    ingest_files(settings, [str(path)])
    second = reader.query("SELECT count(qty), sum(qty) FROM fills")
    assert int(first["count"].iloc[0]) == 50
    assert first.equals(second)
    assert float(second["sum"].iloc[0]) == sum(range(1, 51))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    account=st.text(alphabet="AZaz09_.:-", min_size=1, max_size=64),
    strategy=st.text(alphabet="AZaz09_.:-", min_size=1, max_size=64),
    symbol=st.text(alphabet="AZaz09_.:/-", min_size=1, max_size=64),
    qty=st.floats(min_value=5e-324, max_value=1e7, allow_nan=False, allow_infinity=False),  # notional ≤ 1e15
    price=st.floats(min_value=1e-12, max_value=1e8, allow_nan=False, allow_infinity=False),
    fill_id=st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=128),
)
def test_awkward_values_round_trip(
    settings: Settings, reader: Reader, tmp_path: Path, account, strategy, symbol, qty, price, fill_id
) -> None:
    record = fill(
        ts=time.time_ns() - NS,
        account=account,
        strategy=strategy,
        symbol=symbol,
        qty=qty,
        price=price,
        fill_id=fill_id,
        order_id=fill_id[::-1],
    )
    path = write_jsonl(tmp_path / "awkward.jsonl", [record])
    summary = ingest_files(settings, [str(path)])
    assert summary.written == 1
    try:
        _check_round_trip(reader, record)
    finally:
        reader.raw("DROP MEASUREMENT fills")  # hypothesis reuses this test's database across examples


def _check_round_trip(reader: Reader, record: dict[str, Any]) -> None:
    account, strategy, symbol = record["account"], record["strategy"], record["symbol"]
    fill_id, qty, price = record["fill_id"], record["qty"], record["price"]
    frame = reader.query(
        "SELECT qty, price, fill_id, order_id FROM fills WHERE "
        f"account = {escape_string(account)} AND strategy = {escape_string(strategy)} "
        f"AND symbol = {escape_string(symbol)} GROUP BY *"
    )
    row = frame[frame["fill_id"] == fill_id]
    assert len(row) == 1
    # InfluxDB's JSON prints integral floats ≥ 1e15 without a decimal point; as floats they are exact
    assert float(row["qty"].iloc[0]) == qty and float(row["price"].iloc[0]) == price
    assert row["order_id"].iloc[0] == fill_id[::-1]
    assert (row["account"].iloc[0], row["strategy"].iloc[0], row["symbol"].iloc[0]) == (
        account,
        strategy,
        symbol,
    )


def _stratmon(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collector", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def test_cli_json_summary_and_query(settings: Settings, tmp_path: Path) -> None:
    now = time.time_ns()
    path = write_jsonl(
        tmp_path / "cli.jsonl",
        [fill(ts=now - NS, fill_id="a"), fill(ts=now - NS, qty=0), fill(ts=now - NS, fill_id="a")],
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "STRATMON_INFLUX_URL": str(settings.influx.url),
        "STRATMON_INFLUX_DATABASE": settings.influx.database,
        "STRATMON_SPOOL_DIR": str(tmp_path / "spool"),
    }
    done = _stratmon("ingest", str(path), "--json", "--dead-letter", str(tmp_path / "dl.jsonl"), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"accepted": 1, "rejected": 1, "duplicates": 1, "written": 1}
    assert read_jsonl(tmp_path / "dl.jsonl")[0]["error"] == "qty must be > 0, got 0.0"

    out = _stratmon("query", "SELECT qty, price FROM fills", "--format", "json", env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [(r["qty"], r["price"]) for r in rows] == [(2.0, 5100.25)]

    csv_out = _stratmon("query", "SELECT qty FROM fills", "--format", "csv", env=env, cwd=tmp_path)
    assert csv_out.stdout.splitlines()[0] == "time,qty"

    bad = _stratmon("query", "SELEKT nonsense", env=env, cwd=tmp_path)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "error parsing query" in bad.stderr


def test_cli_unknown_extension_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "fills.txt"
    path.write_text("")
    done = _stratmon("ingest", str(path), env={"PATH": "/usr/bin:/bin", "STRATMON_INFLUX_URL": "http://127.0.0.1:9"})
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"stratmon: error: {path}: cannot tell the format from '.txt'; pass --input-format jsonl|csv|fix"
    )
