"""Damaged state is moved aside, reported once, and the collector starts without it.

A state file that cannot be read (a corrupted checkpoint, a journal with invalid bytes, a
directory where a file belongs, a file where a directory belongs) is renamed to
`<name>.damaged-<UTC time>` next to where it was, so nothing is deleted and a person can look
at it, and one warning says what the collector lost by not using it and how to recover.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)


def quarantine(path: Path, problem: str, lost: str, recover: str) -> Path:
    """Rename `path` aside (file or directory) and log one warning; returns the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    moved = path.with_name(f"{path.name}.damaged-{stamp}")
    suffix = 1
    while os.path.lexists(moved):
        moved = path.with_name(f"{path.name}.damaged-{stamp}.{suffix}")
        suffix += 1
    os.replace(path, moved)
    log.warning("%s: %s; moved to %s. Lost: %s. To recover: %s", path, problem, moved, lost, recover)
    return moved


def ensure_directory(path: Path, lost: str) -> None:
    """Create `path` as a directory, first moving aside a file (or anything else) in its way."""
    if os.path.lexists(path) and not path.is_dir():
        quarantine(path, "expected a directory, found a file", lost, "nothing to do; the directory was recreated")
    path.mkdir(parents=True, exist_ok=True)
