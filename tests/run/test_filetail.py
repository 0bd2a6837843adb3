"""The file source on real files: appends, partial lines, rotation, truncation, CSV, resuming by token."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from collector.config import FileSourceConfig
from collector.model import Fill, FillValidator
from collector.sources.base import Batch, Checker, Outlet
from collector.sources.deadletter import DeadLetter
from collector.sources.filetail import FileTail
from tests.helpers import fill, read_jsonl


def _line(i: int, **overrides: Any) -> str:
    return json.dumps(fill(fill_id=f"f{i}", **overrides)) + "\n"


class Harness:
    def __init__(self, tmp_path: Path, *paths: str, fmt: str = "auto", batch_lines: int = 2000) -> None:
        self.config = FileSourceConfig(type="file", paths=list(paths), format=fmt, batch_lines=batch_lines)
        self.tail = FileTail(self.config)
        self.outlet = Outlet(1000, threading.Event())
        self.dead = tmp_path / "dead.jsonl"
        self.checker = Checker(FillValidator(), DeadLetter(self.dead))

    def poll(self) -> list[Batch]:
        self.tail.poll(self.outlet, self.checker)
        self.checker.flush()
        batches = []
        while not self.outlet.queue.empty():
            batches.append(self.outlet.queue.get_nowait())
        return batches

    def ids(self) -> list[str]:
        return [e.fill_id for b in self.poll() for e in b.events if isinstance(e, Fill)]


def test_tails_appended_lines_and_waits_for_the_newline(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    path.write_text(_line(1) + _line(2))
    h = Harness(tmp_path, str(path))
    assert h.ids() == ["f1", "f2"]
    assert h.ids() == []
    partial = _line(3)
    with open(path, "a") as handle:
        handle.write(partial[:20])
    assert h.ids() == []  # half a line is not a record yet
    with open(path, "a") as handle:
        handle.write(partial[20:] + _line(4))
    assert h.ids() == ["f3", "f4"]
    assert h.tail.token()[str(path)][2] == path.stat().st_size


def test_token_resumes_exactly_after_the_last_handed_over_batch(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    path.write_text("".join(_line(i) for i in range(10)))
    h = Harness(tmp_path, str(path), batch_lines=3)
    batches = h.poll()
    assert [len(b.events) for b in batches] == [3, 3, 3, 1]
    token = batches[1].token  # as if the engine had processed only two batches before a crash
    again = Harness(tmp_path, str(path))
    again.tail.restore(json.loads(json.dumps(token)))  # survives serialization
    assert again.ids() == [f"f{i}" for i in range(6, 10)]


def test_rotation_by_rename_reads_old_tail_then_new_file(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    path.write_text(_line(1))
    h = Harness(tmp_path, str(path))
    assert h.ids() == ["f1"]
    with open(path, "a") as handle:
        handle.write(_line(2))
    os.rename(path, tmp_path / "fills.jsonl.1")  # logrotate: rename, then a new file at the path
    path.write_text(_line(3))
    assert h.ids() == ["f2", "f3"]


def test_truncation_restarts_the_file(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    path.write_text(_line(1) + _line(2))
    h = Harness(tmp_path, str(path))
    assert h.ids() == ["f1", "f2"]
    path.write_text(_line(3))  # copytruncate-style: same inode, shorter
    assert h.ids() == ["f3"]


def test_glob_picks_up_new_files_and_skips_unknown_extensions(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(_line(1))
    (tmp_path / "notes.txt").write_text("hello\n")
    h = Harness(tmp_path, str(tmp_path / "*"))
    assert h.ids() == ["f1"]
    (tmp_path / "b.jsonl").write_text(_line(2))
    assert h.ids() == ["f2"]


def test_csv_header_is_remembered_across_a_restore(tmp_path: Path) -> None:
    path = tmp_path / "fills.csv"
    header = "ts,account,strategy,symbol,side,qty,price,fill_id\n"
    row = "2024-03-01T14:30:00Z,ACC1,trend,ES,buy,1,5100,{}\n"
    path.write_text(header + row.format("c1"))
    h = Harness(tmp_path, str(path))
    batches = h.poll()
    assert [e.fill_id for e in batches[0].events if isinstance(e, Fill)] == ["c1"]
    with open(path, "a") as handle:
        handle.write(row.format("c2") + "too,few\n")
    again = Harness(tmp_path, str(path))
    again.tail.restore(batches[-1].token)
    assert again.ids() == ["c2"]
    letters = read_jsonl(again.dead)
    assert len(letters) == 1 and "columns" in letters[0]["error"] and letters[0]["source"] == f"{path}:4"


def test_bad_lines_are_dead_lettered_with_their_line_number_and_good_ones_pass(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    path.write_text(_line(1) + "{not json\n" + _line(2, qty=-1) + _line(3))
    h = Harness(tmp_path, str(path))
    assert h.ids() == ["f1", "f3"]
    letters = read_jsonl(h.dead)
    assert [letter["source"] for letter in letters] == [f"{path}:2", f"{path}:3"]
    assert "invalid JSON" in letters[0]["error"] and "qty" in letters[1]["error"]


def test_truncated_and_refilled_past_the_offset_between_polls_is_read_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "fills.jsonl"
    path.write_text("".join(_line(i) for i in range(5)))
    h = Harness(tmp_path, str(path))
    assert len(h.ids()) == 5
    with caplog.at_level(logging.WARNING):
        path.write_text("".join(_line(i, account="ACC2") for i in range(100, 107)))  # same inode, longer
        assert h.ids() == [f"f{i}" for i in range(100, 107)]  # all of them, not just those past the offset
    assert any("truncated and refilled" in r.getMessage() for r in caplog.records)


def test_truncated_and_refilled_while_down_is_read_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    path.write_text("".join(_line(i) for i in range(5)))
    h = Harness(tmp_path, str(path))
    assert len(h.ids()) == 5
    token = json.loads(json.dumps(h.tail.token()))
    with open(path, "r+") as handle:  # copytruncate while the collector is down: same inode
        handle.truncate(0)
        handle.write("".join(_line(i, account="ACC2") for i in range(200, 207)))
    again = Harness(tmp_path, str(path))
    again.tail.restore(token)
    assert again.ids() == [f"f{i}" for i in range(200, 207)]
    unchanged = Harness(tmp_path, str(path))  # an untouched file still resumes at its offset
    unchanged.tail.restore(json.loads(json.dumps(again.tail.token())))
    assert unchanged.ids() == []


def test_a_restarted_tail_continues_after_its_last_batch(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    path.write_text("".join(_line(i) for i in range(4)))
    h = Harness(tmp_path, str(path))
    h.tail.start(h.outlet, h.checker)
    deadline = time.monotonic() + 10
    while h.outlet.depth() < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    h.tail.stop()
    with open(path, "a") as handle:
        handle.write(_line(4))
    h.tail.start(h.outlet, h.checker)  # what the collector does after a failure, with backoff
    deadline = time.monotonic() + 10
    while h.outlet.depth() < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    h.tail.stop()
    batches = [h.outlet.queue.get_nowait() for _ in range(h.outlet.depth())]
    assert [e.fill_id for b in batches for e in b.events if isinstance(e, Fill)] == [f"f{i}" for i in range(5)]
