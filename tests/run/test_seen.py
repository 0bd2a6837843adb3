"""The duplicate-id journal: restore cuts to the checkpointed length, compaction keeps the window."""

from __future__ import annotations

from pathlib import Path

from collector.run.seen import SeenIds


def test_restore_forgets_ids_after_the_checkpoint(tmp_path: Path) -> None:
    seen = SeenIds(tmp_path, capacity=100)
    seen.restore(None)
    assert seen.add("A", "1") and seen.add("A", "2") and not seen.add("A", "1")
    position = seen.durable_position()
    seen.add("A", "3")  # processed after the checkpoint, then a crash
    seen.close()
    again = SeenIds(tmp_path, capacity=100)
    again.restore(position)
    assert not again.add("A", "2")  # remembered: processed before the checkpoint
    assert again.add("A", "3")  # forgotten: it will be processed again after the restart
    assert again.add("B", "1")  # accounts are separate


def test_compaction_writes_a_new_generation_and_keeps_the_window(tmp_path: Path) -> None:
    seen = SeenIds(tmp_path, capacity=10)
    seen.restore(None)
    for i in range(25):
        seen.add("A", str(i))
    position = seen.durable_position()
    assert position[0] == 1 and seen.entries == 10
    assert (tmp_path / "seen-ids.0.log").exists()  # still valid for the older checkpoint
    seen.close()
    again = SeenIds(tmp_path, capacity=10)
    again.restore(position)
    assert not again.add("A", "24") and again.add("A", "0")  # the window holds the last 10 only
    assert not (tmp_path / "seen-ids.0.log").exists()
    again.close()


def test_invalid_utf8_in_the_journal_is_quarantined_and_the_rest_kept(tmp_path: Path) -> None:
    (tmp_path / "seen-ids.0.log").write_bytes(b"A\t1\nA\t\xff\xfe\nA\t3\n")
    seen = SeenIds(tmp_path, capacity=100)
    seen.restore((0, 13))
    assert not seen.add("A", "1") and not seen.add("A", "3") and seen.add("A", "4")
    seen.close()
    assert len(list(tmp_path.glob("seen-ids.0.log.damaged-*"))) == 1
    assert (tmp_path / "seen-ids.0.log").read_bytes() == b"A\t1\nA\t3\nA\t4\n"


def test_a_directory_in_place_of_the_journal_is_moved_aside(tmp_path: Path) -> None:
    (tmp_path / "seen-ids.0.log").mkdir()
    seen = SeenIds(tmp_path, capacity=100)
    seen.restore((0, 40))
    assert seen.add("A", "1")
    position = seen.durable_position()
    seen.close()
    assert (tmp_path / "seen-ids.0.log").is_file() and position == (0, 4)
    assert len(list(tmp_path.glob("seen-ids.0.log.damaged-*"))) == 1


def test_a_file_in_place_of_the_state_directory_is_moved_aside(tmp_path: Path) -> None:
    (tmp_path / "collector").write_text("junk")
    seen = SeenIds(tmp_path / "collector", capacity=100)
    seen.restore(None)
    assert seen.add("A", "1")
    seen.close()
    assert (tmp_path / "collector").is_dir()
