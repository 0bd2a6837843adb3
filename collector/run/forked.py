"""Run a function in a forked child process: its memory is a copy-on-write snapshot of this one.

This is how a checkpoint is written without stopping the engine (as Redis writes its snapshots):
fork costs the calling thread a copy of the page tables (~10 ms for 500 MB of resident memory,
whatever the state's size), the child sees the state exactly as it was at the fork and encodes,
checksums and writes it on the other core, while the parent goes on changing its own copy.

Only the forking thread exists in the child, so the function must not take a lock another thread
might have held at the fork (logging, imports, an OpenSSL digest fetched for the first time): it
should only read data the forking thread owns and write files. The child leaves with os._exit
(no atexit handlers, no buffered output of the parent flushed twice), and on Linux dies with its
parent: after a kill -9 no orphan goes on writing while the restarted collector writes its own.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


class ChildFailed(Exception):
    """The function raised in the child (the message says what), or the child died."""


def _describe(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else repr(exc)


class Forked:
    """`work` running in a child process; `done()` polls, `result()` is its return value."""

    def __init__(self, work: Callable[[], int]) -> None:
        read, write = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                if _LIBC is not None:
                    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
                if os.getppid() != parent:  # it died before that
                    raise ChildFailed("the parent died")
                os.close(read)
                message = b"%d" % work()
                code = 0
            except BaseException as exc:
                message = _describe(exc).encode(errors="replace")
            finally:
                try:
                    os.write(write, message[:4096])  # below the pipe's buffer: never blocks
                finally:
                    os._exit(code)
        os.close(write)
        self.pid, self._pipe = pid, read
        self._status: int | None = None

    def done(self) -> bool:
        if self._status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == 0:
                return False
            self._status = status
        return True

    def wait(self) -> None:
        if self._status is None:
            self._status = os.waitpid(self.pid, 0)[1]

    def result(self) -> int:
        """The child's return value (waits for it); ChildFailed with its error."""
        self.wait()
        with os.fdopen(self._pipe, "rb") as pipe:
            message = pipe.read().decode(errors="replace")
        assert self._status is not None
        if os.waitstatus_to_exitcode(self._status) != 0 or not message.isdigit():
            code = os.waitstatus_to_exitcode(self._status)
            raise ChildFailed(message or (f"killed by signal {-code}" if code < 0 else f"exit status {code}"))
        return int(message)
