"""FIX logs (4.2 / 4.4 / 5.0SP2, SOH or `|`, log-line prefixes) → fills, busts and corrections."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.config import Settings
from collector.errors import UserError
from collector.ingest import ingest_files
from collector.model import FillValidator
from collector.report import build_report
from collector.sources.fixlog import FixFields, classify, iter_fix, split_messages
from collector.sources.inputs import detect_input_format
from collector.store.reader import Reader
from tests.fix.messages import desk_session, execution_report, expected_fills, trade


def _log(path: Path, messages: list[bytes], sep: bytes = b"\x01", prefix: bool = True) -> Path:
    lines = []
    for i, message in enumerate(messages):
        head = f"20240304-14:31:{i:02d}.000 : ".encode() if prefix else b""
        lines.append(head + message.replace(b"\x01", sep))
    heartbeat = b"8=FIX.4.4\x019=5\x0135=0\x0110=000\x01".replace(b"\x01", sep)
    path.write_bytes(b"\n".join([heartbeat, *lines]) + b"\n")
    return path


def stored_fills(reader: Reader) -> dict[str, dict[str, object]]:
    frame = reader.query("SELECT * FROM fills").reset_index()
    return {
        str(row["fill_id"]): {
            "side": row["side"],
            "qty": row["qty"],
            "price": row["price"],
            "fee": pytest.approx(row["fee"], rel=1e-12),
            "ts": int(row["time"].value) // 1000 * 1000,  # the key's sub-µs de-clash offset dropped
            "symbol": row["symbol"],
            "multiplier": row["multiplier"],
        }
        for row in frame.to_dict("records")
    }


def expected_stored() -> dict[str, dict[str, object]]:
    return {k: {**v, "symbol": "ES.202403", "multiplier": 50.0} for k, v in expected_fills().items()}


@pytest.mark.parametrize(
    ("begin", "sep", "prefix"),
    [("FIX.4.4", b"\x01", True), ("FIX.4.2", b"|", True), ("FIXT.1.1", b"|", False), ("FIX.4.4", b"^A", True)],
)
def test_log_ingest_books_trades_busts_and_corrections(
    begin: str, sep: bytes, prefix: bool, settings: Settings, reader: Reader, tmp_path: Path
) -> None:
    path = _log(tmp_path / "dropcopy.log", desk_session(begin), sep, prefix)
    assert detect_input_format(str(path), None) == "fix"
    summary = ingest_files(settings, [str(path)])
    # 5 trades, the bust and the correction; the heartbeat, the new-order and the cancel reports are skipped
    assert (summary.accepted, summary.rejected, summary.skipped) == (7, 0, 3)
    assert stored_fills(reader) == expected_stored()
    report = build_report(settings, [str(path)])
    book = report.levels("book")["book"][0]
    # FIFO: sell 3 @5131.25 closes 3 @5120.25, sell 1 @5140 closes 1 @5120.5; × 50
    assert book["realized_pnl"] == pytest.approx((3 * 11.0 + 19.5) * 50)
    assert book["fees"] == pytest.approx(2.10 * 3 + 2.55) and book["fills"] == 4
    assert book["slippage_bps_avg"] is not None  # 44 (limit price) is the arrival price


def test_messages_are_found_anywhere_on_a_line_and_58_text_is_not_a_start() -> None:
    one = execution_report("FIX.4.4", [(58, "8=FIX inside text"), *trade("E-9", "1", "1", "10", "10:00:00")])
    line = b"2024-03-04 10:00:00,123 INFO incoming: " + one.replace(b"\x01", b"|") + b" " + one
    messages = split_messages(line)
    assert len(messages) == 2 and all(dict(m)["17"] == "E-9" for m in messages)
    assert dict(messages[0])["58"] == "8=FIX inside text"


@pytest.mark.parametrize(
    ("change", "skip"),
    [
        ({"35": "D"}, "MsgType(35)=D is not an ExecutionReport"),
        ({"150": "0"}, "ExecType(150)=0 is not a trade"),
        ({"150": "I"}, "ExecType(150)=I is not a trade"),
        ({"8": "FIX.4.2", "150": "2", "20": "3"}, "ExecType(150)=2 with ExecTransType(20)=3 is not a trade"),
    ],
)
def test_non_trade_reports_are_skipped_with_a_reason(change: dict[str, str], skip: str) -> None:
    tags = {str(t): v for t, v in trade("E-1", "1", "1", "10", "10:00:00")} | {"8": "FIX.4.4", "35": "8"} | change
    assert classify(tags, FixFields()).skip == skip


def test_fix_fields_become_contract_records() -> None:
    tags = {str(t): v for t, v in trade("E-1", "6", "4", "10.5", "10:00:00.123456", comm_type="2")}
    record = classify({"8": "FIX.4.4", "35": "8", **tags}, FixFields(strategy_tag=None)).record
    assert record is not None
    fill = FillValidator().validate(record, 2_000_000_000 * 10**9)
    assert (fill.side, fill.qty, fill.price, fill.symbol, fill.strategy) == ("sell", 4.0, 10.5, "ES.202403", "fix")
    assert fill.fee == pytest.approx(2.10 * 4 * 10.5)  # CommType 2: a fraction of the notional
    assert fill.ts == 1_709_546_400_123_456_000 and fill.order_id == "O-1" and fill.venue == "XCME"
    assert fill.arrival_price == 5120.0 and fill.multiplier == 50.0
    tags["9999"] = "trend_es"
    named = classify({"8": "FIX.4.4", "35": "8", **tags}, FixFields(strategy_tag=9999)).record
    assert named is not None and named["strategy"] == "trend_es"


def test_bad_values_are_dead_lettered_with_the_contract_reason(settings: Settings, tmp_path: Path) -> None:
    bad = trade("E-1", "7", "1", "10", "10:00:00")  # Side 7 (undisclosed)
    late = [(t, "2024-03-04 10:00" if t == 60 else v) for t, v in trade("E-2", "1", "1", "10", "10:00:00")]
    path = _log(tmp_path / "bad.fix", [execution_report("FIX.4.4", bad), execution_report("FIX.4.4", late)])
    report = build_report(settings, [str(path)])
    assert report.rejected == 2
    reasons = [error for _, error in report.dead_letter.samples]
    assert reasons == [
        "side must be 'buy' or 'sell', got 'FIX Side(54)=7'",
        "ts '2024-03-04 10:00' is not an RFC 3339 timestamp (e.g. 2024-05-01T13:30:00.25Z)",
    ]
    assert report.all_rejected == [str(path)]


def test_a_log_without_fix_messages_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text("2024-03-04 10:00:00 INFO started\n")
    with pytest.raises(UserError, match="no FIX messages"):
        detect_input_format(str(path), None)
    assert next(iter(iter_fix([b"not fix"], "x"))).skipped == "no FIX message on this line"


def test_the_shipped_example_log_is_the_tested_day(settings: Settings) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "fix-dropcopy.log"
    report = build_report(settings, [str(example)])
    assert (report.accepted, report.rejected) == (7, 0)
    book = report.levels("book")["book"][0]
    assert book["realized_pnl"] == pytest.approx((3 * 11.0 + 19.5) * 50) and book["fills"] == 4
