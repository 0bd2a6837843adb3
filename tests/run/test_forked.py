"""A function run in a forked child: it sees the state as of the fork, its result or error comes back."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from collector.run.forked import ChildFailed, Forked


def test_the_child_sees_the_state_as_of_the_fork(tmp_path: Path) -> None:
    state = np.arange(1_000_000, dtype=np.int64)
    read, write = os.pipe()

    def work() -> int:
        os.read(read, 1)  # the parent has changed its copy by now
        (tmp_path / "sum").write_text(str(int(state.sum())))
        return int(state[0])

    child = Forked(work)
    state += 1
    os.write(write, b"x")
    assert child.result() == 0
    assert int((tmp_path / "sum").read_text()) == 999_999 * 1_000_000 // 2
    os.close(read)
    os.close(write)


def test_an_error_in_the_child_is_reported_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "blocker").mkdir()
    child = Forked(lambda: (tmp_path / "blocker").write_bytes(b"x"))
    with pytest.raises(ChildFailed, match="Is a directory"):
        child.result()


def test_a_killed_child_is_reported() -> None:
    read, write = os.pipe()
    child = Forked(lambda: len(os.read(read, 1)))  # waits until killed
    assert not child.done()
    os.kill(child.pid, signal.SIGKILL)
    with pytest.raises(ChildFailed, match="killed by signal 9"):
        child.result()
    assert child.done()
    os.close(read)
    os.close(write)
