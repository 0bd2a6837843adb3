"""Column maps: the shipped broker profiles, header checks, BOM, time zones/DST, signs, all-rejected exit."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from collector.config import Settings
from collector.errors import UserError
from collector.ingest import ingest_files
from collector.model import NS
from collector.report import build_report
from collector.sources.colmap import ColumnMap, Mapper, load_map
from collector.store.reader import Reader

ROOT = Path(__file__).resolve().parents[1]
MAPS = ROOT / "examples" / "maps"
# (profile, fills in the sample, realized PnL recomputed by hand from the sample rows)
SAMPLES = [
    # AAPL +1000 @175.2, −600 @171.05, −400 @172.3; ESH4 (×50) +2 @5120.25, −2 @5140.5
    ("ibkr-activity", 5, -600 * 4.15 - 400 * 2.9 + 2 * 20.25 * 50),
    # MSFT +300 @415.5, +200 @415.52, −500 @409.1; NQH4 (×20) −1 @18120.25, +1 @18050; SPY +50
    ("ibkr-flex-trades", 6, -300 * 6.4 - 200 * 6.42 + 70.25 * 20),
    # ESH4 (×50) +3 @5125.25, +2 @5125.5, −5 @5131; CLK4 (×1000) −4 @78.12, +4 @77.95; SPY +100
    ("generic-oms", 6, (3 * 5.75 + 2 * 5.5) * 50 + 4 * 0.17 * 1000),
]


def _env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "STRATMON_INFLUX_URL": str(settings.influx.url),
        "STRATMON_INFLUX_DATABASE": settings.influx.database,
        "STRATMON_SPOOL_DIR": str(tmp_path / "spool"),
    }


def _stratmon(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collector", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )


@pytest.mark.parametrize(("name", "fills", "realized"), SAMPLES)
def test_profile_ingests_sample(name: str, fills: int, realized: float, settings: Settings, reader: Reader) -> None:
    profile = load_map(MAPS / f"{name}.yaml")
    summary = ingest_files(settings, [str(MAPS / f"{name}.csv")], profile=profile)
    assert (summary.accepted, summary.rejected, summary.written) == (fills, 0, fills)
    assert not settings.ingest.dead_letter.exists() or settings.ingest.dead_letter.read_text() == ""
    stored = reader.query("SELECT realized_pnl, qty FROM fills")
    assert len(stored) == fills
    assert stored["realized_pnl"].sum() == pytest.approx(realized, rel=1e-9)
    report = build_report(settings, [str(MAPS / f"{name}.csv")], profile=profile)
    portfolio = report.levels("portfolio")["portfolio"][0]
    assert portfolio["realized_pnl"] == pytest.approx(realized, rel=1e-9)


def test_ibkr_activity_times_signs_and_multipliers() -> None:
    profile = load_map(MAPS / "ibkr-activity.yaml")
    settings = Settings(ingest={"dead_letter": "/dev/null"})
    report = build_report(settings, [str(MAPS / "ibkr-activity.csv")], profile=profile)
    assert report.rejected == 0 and report.accepted == 5
    mapper = Mapper(profile)
    row = {"Header": "Data", "DataDiscriminator": "Order", "Asset Category": "Stocks", "Symbol": "ESH4"}
    row.update({"Date/Time": "2024-03-07, 10:02:44", "Quantity": "-2", "T. Price": "5,120.25", "Comm/Fee": "-4.7"})
    record = mapper.apply(row)
    # 10:02:44 EST (UTC−5) on 2024-03-07
    assert record["ts"] == 1_709_823_764 * NS
    assert (record["side"], record["qty"], record["price"], record["fee"]) == ("sell", 2.0, "5120.25", 4.7)
    assert record["multiplier"] == 50 and record["account"] == "U1234567" and record["strategy"] == "manual"
    # after the switch to daylight time (2024-03-10) the same wall time is UTC−4
    row["Date/Time"] = "2024-03-11, 10:02:44"
    assert mapper.apply(row)["ts"] == (1_709_823_764 + 4 * 86_400 - 3600) * NS
    assert mapper.apply(row)["fill_id"] != mapper.apply(row)["fill_id"]  # repeats of an identical row stay distinct


def test_dst_gap_and_fold() -> None:
    mapper = Mapper(ColumnMap.model_validate(_minimal(timezone="America/New_York")))
    gap = {"T": "2024-03-10 02:30:00", "Q": "1", "P": "1", "S": "B", "I": "x"}
    with pytest.raises(Exception, match="does not exist in America/New_York"):
        mapper.apply(gap)
    fold = dict(gap, T="2024-11-03 01:30:00")  # happens twice: the first (EDT) is taken
    assert mapper.apply(fold)["ts"] == 1_730_611_800 * NS
    zoned = dict(gap, T="2024-03-10T02:30:00Z")  # times with a zone are not touched by the map
    assert mapper.apply(zoned)["ts"] == "2024-03-10T02:30:00Z"


def _minimal(**extra: object) -> dict[str, object]:
    profile: dict[str, object] = {
        "columns": {"ts": "T", "qty": "Q", "price": "P", "side": "S", "fill_id": "I"},
        "defaults": {"account": "A", "strategy": "s", "symbol": "X"},
    }
    profile.update(extra)
    return profile


def test_signed_quantity_that_disagrees_with_the_side_is_rejected(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("T,Q,P,S,I\n2024-03-04T10:00:00Z,-5,10,BUY,a\n2024-03-04T10:00:01Z,-5,10,SELL,b\n")
    profile = ColumnMap.model_validate(_minimal(signed_qty=True))
    report = build_report(settings, [str(path)], profile=profile)
    assert (report.accepted, report.rejected) == (1, 1)
    assert report.dead_letter.samples[0][1] == "side 'BUY' disagrees with the signed quantity '-5'"


def test_missing_mapped_column_fails_at_once_with_expected_and_found(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("\ufeffT,Q,Px,S,I\n" + "2024-03-04T10:00:00Z,5,10,B,a\n" * 3)
    with pytest.raises(UserError) as caught:
        ingest_files(settings, [str(path)], profile=ColumnMap.model_validate(_minimal()))
    message = str(caught.value)
    assert message.startswith(f"{path}:1: the header lacks column(s) ['P']")
    assert "expected ['T', 'Q', 'P', 'S', 'I'], found ['T', 'Q', 'Px', 'S', 'I']" in message  # BOM dropped
    assert not settings.ingest.dead_letter.exists() or settings.ingest.dead_letter.read_text() == ""


def test_contract_csv_without_required_columns_fails_at_once(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "ib.csv"
    path.write_text("DateTime,symbol,qty\n20240304;093112,AAPL,100\n")
    missing = r"\['ts', 'account', 'strategy', 'side', 'price', 'fill_id'\]"
    with pytest.raises(UserError, match=rf"lacks required column\(s\) {missing}; expected"):
        build_report(settings, [str(path)])


def test_bom_is_accepted_in_csv_and_jsonl(settings: Settings, tmp_path: Path) -> None:
    csv_path = tmp_path / "bom.csv"
    csv_path.write_bytes(
        b"\xef\xbb\xbfts,account,strategy,symbol,side,qty,price,fill_id\n2024-03-04T10:00:00Z,A,s,X,buy,1,10,a\n"
    )
    json_path = tmp_path / "bom.jsonl"
    json_path.write_bytes(
        b'\xef\xbb\xbf{"ts":"2024-03-04T10:00:01Z","account":"A","strategy":"s","symbol":"X","side":"sell",'
        b'"qty":1,"price":11,"fill_id":"b"}\n'
    )
    report = build_report(settings, [str(csv_path), str(json_path)])
    assert (report.accepted, report.rejected) == (2, 0)


def test_profile_mistakes_name_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("columns:\n  ts: T\n  qty: Q\ntimezone: Mars/Olympus\n")
    with pytest.raises(UserError) as caught:
        load_map(path)
    assert f"{path}:4: timezone" in str(caught.value) and "unknown IANA time zone" in str(caught.value)
    path.write_text("columns:\n  ts: T\n  qty: Q\n  colour: C\n")
    with pytest.raises(UserError, match="unknown stratmon field"):
        load_map(path)
    path.write_text("columns:\n  ts: T\n")
    with pytest.raises(UserError, match=r"no column or default for required field\(s\) \['account'"):
        load_map(path)


def test_all_rejected_file_exits_non_zero_and_json_says_so(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "oms.csv"
    path.write_text("T,Q,P,S,I\n2024-03-04 10:00:00,5,10,B,a\n2024-03-04 10:00:01,5,10,B,b\n")
    profile = tmp_path / "p.yaml"
    profile.write_text(json.dumps(_minimal()))  # JSON is YAML; no timezone: zone-less times are rejected
    env = _env(settings, tmp_path)
    done = _stratmon(
        "ingest", str(path), "--map", str(profile), "--json", "--dead-letter", str(tmp_path / "dl.jsonl"),
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    answer = json.loads(done.stdout)
    assert answer["accepted"] == 0 and answer["rejected"] == 2
    assert answer["error"] == f"every record of {path} was rejected (reasons in the dead-letter file)"
    assert (
        f"has no time zone; add Z or ±HH:MM, or set timezone: in map {profile}" in (tmp_path / "dl.jsonl").read_text()
    )
    # with the zone it goes in, exit 0
    profile.write_text(json.dumps(_minimal(timezone="Europe/London")))
    done = _stratmon("ingest", str(path), "--map", str(profile), "--json", env=env, cwd=tmp_path)
    assert done.returncode == 0 and json.loads(done.stdout)["accepted"] == 2


def test_wrong_map_on_a_csv_fails_naming_file_map_and_missing_columns(settings: Settings, tmp_path: Path) -> None:
    path = MAPS / "generic-oms.csv"
    env = _env(settings, tmp_path)
    for command in ("report", "ingest"):
        done = _stratmon(
            command, "--map", "ibkr-activity", str(path), "--dead-letter", str(tmp_path / "dl.jsonl"),
            env=env, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"stratmon: error: {path}: no 'Trades' section"), lines
        assert f"map {MAPS / 'ibkr-activity.yaml'}" in lines[0]
        assert "the header lacks column(s) ['Date/Time', 'Quantity', 'T. Price', 'Comm/Fee'," in lines[0]
        assert "Traceback" not in done.stderr and "written" not in done.stdout
    dead = tmp_path / "dl.jsonl"
    assert not dead.exists() or dead.read_text() == ""  # refused before any record: nothing half-read


def test_map_on_a_jsonl_file_is_an_error_saying_what_it_lacks(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    rows = [
        {"ts": f"2024-03-04T10:00:{i:02d}Z", "account": "A", "strategy": "s", "symbol": "X", "side": "buy",
         "qty": 1, "price": 10, "fill_id": f"f{i}"}
        for i in range(12)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    done = _stratmon(
        "report", "--map", "ibkr-activity", str(path), "--format", "json",
        "--dead-letter", str(tmp_path / "dl.jsonl"), env=_env(settings, tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert json.loads(done.stdout)["levels"]["portfolio"] == []
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"stratmon: error: {path}: no fill through map {MAPS / 'ibkr-activity.yaml'}: 12 record")
    assert "lacks column(s) ['Date/Time', 'Symbol', 'Quantity', 'T. Price', 'Comm/Fee', 'Header'," in lines[0]
    summary = ingest_files(settings, [str(path)], profile=load_map(MAPS / "ibkr-activity.yaml"))
    assert (summary.accepted, summary.rejected, summary.skipped, summary.written) == (0, 0, 12, 0)
    assert (
        summary.contract()["error"] == summary.no_fills[0]
        and summary.no_fills[0] == lines[0][len("stratmon: error: ") :]
    )


def test_valid_map_with_skipped_rows_reports_the_skipped_count(settings: Settings, tmp_path: Path) -> None:
    path = MAPS / "ibkr-activity.csv"
    with path.open(newline="") as handle:  # every line but the Trades section's Data/Order rows and its headers
        cells = [row for row in csv.reader(handle) if row]
    kept = [r for r in cells if r[0] == "Trades" and r[1] == "Data" and r[2] == "Order"]
    headers = [r for r in cells if r[0] == "Trades" and r[1] == "Header"]
    expected_skipped = len(cells) - len(kept) - len(headers)
    assert len(kept) == 5 and expected_skipped > 0
    done = _stratmon(
        "ingest", "--map", "ibkr-activity", str(path), "--dead-letter", str(tmp_path / "dl.jsonl"),
        env=_env(settings, tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == (
        f"accepted 5  rejected 0  duplicates 0  written 5  skipped {expected_skipped} (not fills)"
    )
    assert done.stderr == ""
