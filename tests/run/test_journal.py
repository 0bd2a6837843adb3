"""The intake journal on its own: replay after a position, torn and damaged lines, segments, odd files."""

from __future__ import annotations

from pathlib import Path

from collector.sources.journal import IntakeJournal


def _entries(journal: IntakeJournal, position: tuple[int, int] | None) -> list[int]:
    return [entry["n"] for entry, _ in journal.replay(position)]


def test_replay_from_a_position_cuts_torn_lines_and_skips_damaged_ones(tmp_path: Path) -> None:
    journal = IntakeJournal(tmp_path, "http", segment_bytes=200)
    assert _entries(journal, None) == []
    positions = [journal.append({"n": n, "pad": "x" * 40}) for n in range(10)]
    journal.close()
    assert len(list(tmp_path.glob("http.*.journal"))) > 1  # segments rotated
    again = IntakeJournal(tmp_path, "http", segment_bytes=200)
    assert _entries(again, positions[3]) == list(range(4, 10))
    again.close()
    last = sorted(tmp_path.glob("http.*.journal"), key=lambda p: int(p.name.split(".")[1]))[-1]
    with open(last, "ab") as handle:
        handle.write(b'deadbeef {"n": 99}\n')  # wrong checksum
        handle.write(b"0000")  # a torn append (never acknowledged)
    third = IntakeJournal(tmp_path, "http", segment_bytes=200)
    assert _entries(third, positions[7]) == [8, 9]
    third.release(positions[7])
    third.close()
    assert not last.read_bytes().endswith(b"0000")
    assert not (tmp_path / "http.0.journal").exists()  # covered by a checkpoint: deleted


def test_a_directory_in_place_of_the_journal_is_moved_aside(tmp_path: Path) -> None:
    (tmp_path / "http.0.journal").mkdir()
    journal = IntakeJournal(tmp_path, "http")
    assert _entries(journal, None) == []
    journal.append({"n": 1})
    journal.close()
    assert (tmp_path / "http.0.journal").is_file()
    assert len(list(tmp_path.glob("http.0.journal.damaged-*"))) == 1
