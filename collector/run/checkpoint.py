"""Engine checkpoints: everything needed to continue after a restart, written atomically, read as data.

A checkpoint is taken only right after the writer has made every earlier point durable
(acknowledged by InfluxDB or in the disk spool). It stores each source's position as of the
last batch the engine processed and how far the duplicate-id journal reached. After kill -9
the sources resume from those positions: events after the checkpoint are processed again, and
their points (same deterministic timestamps) overwrite the ones already written, so nothing
is lost and nothing is doubled.

Format (`checkpoint.json`): one header line `stratmon-checkpoint <version> sha256=<hex of the
body>` and a JSON body (`collector.run.state_data` for the engine, timestamp memory and alert
states; source tokens are already JSON-able data). A non-finite float is written as null and
read back as NaN (orjson's convention). Loading never executes code, and any damage
(the checksum catches every flipped byte) raises `DamagedCheckpoint` instead of a half-read state.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import orjson

from collector.engine.engine import Engine
from collector.run import state_data
from collector.store.lineproto import UniqueTimestamps

FORMAT_VERSION = 4
MAGIC = b"stratmon-checkpoint"


class DamagedCheckpoint(Exception):
    """The checkpoint file exists but cannot be used (corrupt, truncated, foreign or from another version)."""


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
    alerts: list[Any] = field(default_factory=list)  # alert rule states (state_data.alerts_data)
    tokens: dict[str, Any] = field(default_factory=dict)  # per source, JSON-able
    counters: Counters = field(default_factory=Counters)


def encode(checkpoint: Checkpoint) -> bytes:
    """Header line + JSON body. orjson is fast but stops at 64-bit integers; the standard library does not."""
    data = {
        "engine": state_data.engine_data(checkpoint.engine),
        "stamps": state_data.stamps_data(checkpoint.stamps),
        "seen_position": checkpoint.seen_position,
        "alerts": checkpoint.alerts,
        "tokens": checkpoint.tokens,
        "counters": asdict(checkpoint.counters),
    }
    try:
        body = orjson.dumps(data)
    except TypeError:  # e.g. a random generator's 128-bit state in a source token
        body = json.dumps(data, separators=(",", ":")).encode()
    return b"%s %d sha256=%s\n%s" % (MAGIC, FORMAT_VERSION, hashlib.sha256(body).hexdigest().encode(), body)


def decode(raw: bytes, capital_by_account: dict[str, float], default_capital: float, stamps: int) -> Checkpoint:
    """The checkpoint in `raw`; DamagedCheckpoint with the reason for anything unexpected."""
    header, newline, body = raw.partition(b"\n")
    parts = header.split(b" ")
    if not newline or len(parts) != 3 or parts[0] != MAGIC or not parts[2].startswith(b"sha256="):
        raise DamagedCheckpoint("not a stratmon checkpoint (bad header)")
    if parts[1] != str(FORMAT_VERSION).encode():
        raise DamagedCheckpoint(f"format version {parts[1].decode(errors='replace')}, expected {FORMAT_VERSION}")
    if hashlib.sha256(body).hexdigest().encode() != parts[2][len(b"sha256=") :]:
        raise DamagedCheckpoint("checksum mismatch (the file is corrupted or truncated)")
    try:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:  # written by the standard library (NaN, big integers)
            data = json.loads(body)
        position = data["seen_position"]
        counters = data["counters"]
        if set(counters) != {f.name for f in fields(Counters)} or not all(type(v) is int for v in counters.values()):
            raise ValueError("bad counters")
        if not isinstance(data["tokens"], dict) or not isinstance(data["alerts"], list):
            raise ValueError("bad tokens or alerts")
        return Checkpoint(
            engine=state_data.engine_from(data["engine"], capital_by_account, default_capital),
            stamps=state_data.stamps_from(data["stamps"], stamps),
            seen_position=None if position is None else (int(position[0]), int(position[1])),
            alerts=data["alerts"],
            tokens=data["tokens"],
            counters=Counters(**counters),
        )
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise DamagedCheckpoint(f"unexpected content ({type(exc).__name__}: {exc})") from None


def save(path: Path, checkpoint: Checkpoint) -> int:
    """Write to a temporary file, fsync, rename: a crash leaves the old or the new checkpoint, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    data = encode(checkpoint)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # e.g. ENOSPC: the previous checkpoint stays
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)
    return len(data)


def load(path: Path, capital_by_account: dict[str, float], default_capital: float, stamps: int) -> Checkpoint | None:
    """The saved checkpoint; None when there is none; DamagedCheckpoint when it cannot be used."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise DamagedCheckpoint("a directory where the checkpoint file belongs") from None
    except OSError as exc:
        raise DamagedCheckpoint(f"cannot read it: {exc.strerror}") from None
    return decode(raw, capital_by_account, default_capital, stamps)
