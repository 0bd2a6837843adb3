"""`stratmon report`: the fixed JSON contract, CSV/table output, rejects summarised on stderr."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from collector.engine.series import METRIC_FIELDS
from tests.helpers import fill, write_jsonl


def _report(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATMON_")}
    return subprocess.run(
        [sys.executable, "-m", "collector", "report", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
    )


def _fills(tmp_path: Path) -> Path:
    return write_jsonl(
        tmp_path / "fills.jsonl",
        [
            fill(ts="2024-03-01T10:00:00Z", fill_id="1", side="buy", qty=10, price=100, fee=1),
            fill(ts="2024-03-01T11:00:00Z", fill_id="2", side="sell", qty=10, price=103, fee=1),
            fill(ts="2024-03-02T10:00:00Z", fill_id="3", side="sell", qty=5, price=100, account="ACC2"),
            fill(ts="2024-03-02T10:00:00Z", fill_id="4", side="sell", qty=0, price=100),
            fill(ts="2024-03-03T10:00:00Z", fill_id="5", side="buy", qty=5, price=98, account="ACC2", strategy="mr"),
        ],
    )


def test_json_contract(tmp_path: Path) -> None:
    done = _report(str(_fills(tmp_path)), "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    levels = json.loads(done.stdout)["levels"]
    assert list(levels) == ["portfolio", "account", "strategy", "book"]
    assert [(r["account"], r["strategy"]) for r in levels["portfolio"]] == [("_all", "_all")]
    assert [(r["account"], r["strategy"]) for r in levels["account"]] == [("ACC1", "_all"), ("ACC2", "_all")]
    assert [(r["account"], r["strategy"]) for r in levels["strategy"]] == [("_all", "mr"), ("_all", "trend_es")]
    assert len(levels["book"]) == 3
    for rows in levels.values():
        for row in rows:
            assert set(row) == {"level", "account", "strategy", *METRIC_FIELDS}
    book = levels["book"][0]
    assert (book["account"], book["strategy"], book["realized_pnl"], book["trades"]) == ("ACC1", "trend_es", 30.0, 1)
    portfolio = levels["portfolio"][0]
    # ACC2 trend short 5 @100, marked at 98 by the later mr fill; mr long 5 @98 marked at 98
    assert portfolio["unrealized_pnl"] == 10.0 and portfolio["equity"] == 38.0
    assert "1 records rejected" in done.stderr and "qty must be > 0" in done.stderr


def test_level_filter_csv_and_table(tmp_path: Path) -> None:
    path = str(_fills(tmp_path))
    only = json.loads(_report(path, "--format", "json", "--level", "strategy", cwd=tmp_path).stdout)["levels"]
    assert list(only) == ["strategy"]
    rows = list(csv.DictReader(io.StringIO(_report(path, "--format", "csv", cwd=tmp_path).stdout)))
    assert [r["level"] for r in rows] == [
        "portfolio",
        "account",
        "account",
        "strategy",
        "strategy",
        "book",
        "book",
        "book",
    ]
    assert rows[0]["profit_factor"] == ""  # undefined → empty cell, never nan
    table = _report(path, cwd=tmp_path).stdout
    assert "portfolio (1)" in table and "book (3)" in table and "trend_es" in table


def test_marks_file_and_missing_file(tmp_path: Path) -> None:
    marks = write_jsonl(tmp_path / "marks.jsonl", [{"ts": "2024-03-04T00:00:00Z", "symbol": "ES", "price": 90.0}])
    done = _report(
        str(_fills(tmp_path)), "--marks", str(marks), "--format", "json", "--level", "portfolio", cwd=tmp_path
    )
    portfolio = json.loads(done.stdout)["levels"]["portfolio"][0]
    assert portfolio["unrealized_pnl"] == 5 * 10 - 5 * 8  # short +50, long −40
    missing = _report(str(tmp_path / "nope.jsonl"), cwd=tmp_path)
    assert missing.returncode == 2 and "cannot open" in missing.stderr and "Traceback" not in missing.stderr
