"""Engine checkpoints: everything needed to continue after a restart, written atomically.

A checkpoint is taken only right after the writer has made every earlier point durable
(acknowledged by InfluxDB or in the disk spool). It stores each source's position as of the
last batch the engine processed and how far the duplicate-id journal reached. After kill -9
the sources resume from those positions: events after the checkpoint are processed again, and
their points (same deterministic timestamps) overwrite the ones already written, so nothing
is lost and nothing is doubled.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.engine.engine import Engine
from collector.store.lineproto import UniqueTimestamps

FORMAT_VERSION = 2


@dataclass
class Counters:
    fills_in: int = 0
    fills_duplicate: int = 0
    marks_in: int = 0
    perf_points: int = 0


@dataclass
class Checkpoint:
    engine: Engine
    stamps: UniqueTimestamps
    seen_position: tuple[int, int] | None = None  # the duplicate-id journal (collector.run.seen)
    alerts: dict[Any, Any] = field(default_factory=dict)  # alert rule states (AlertEngine.export_state)
    tokens: dict[str, Any] = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)
    version: int = FORMAT_VERSION


def save(path: Path, checkpoint: Checkpoint) -> int:
    """Write to a temporary file, fsync, rename: a crash leaves the old or the new checkpoint, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    data = pickle.dumps(checkpoint, protocol=pickle.HIGHEST_PROTOCOL)
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return len(data)


def load(path: Path) -> Checkpoint | None:
    """The saved checkpoint; None when there is none or it is from an incompatible version."""
    try:
        with open(path, "rb") as handle:
            checkpoint = pickle.load(handle)
    except FileNotFoundError:
        return None
    if not isinstance(checkpoint, Checkpoint) or checkpoint.version != FORMAT_VERSION:
        return None
    return checkpoint
