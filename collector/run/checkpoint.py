"""Engine checkpoints: everything needed to continue after a restart, written atomically, read as data.

A checkpoint is taken only right after the writer has made every earlier point durable
(acknowledged by InfluxDB or in the disk spool). It stores each source's position as of the
last batch the engine processed and how far the duplicate-id journal reached. After kill -9
the sources resume from those positions: events after the checkpoint are processed again, and
their points (same deterministic timestamps) overwrite the ones already written, so nothing
is lost and nothing is doubled.

Taking one is split in two: `snapshot` copies the state in the engine thread (the engine's
arrays and the timestamp memory are copied whole into buffers `reserve` prepared off that thread,
20-50 ms at 30k series; the alert states, exported by the caller before it, cost more: ~0.5-0.8 s
for 32k watches), and `save` encodes, checksums, fsyncs and renames it, in a background thread while
the engine goes on.

Format (`checkpoint.json`, version 5): one header line `stratmon-checkpoint 5 sha256=<hex of the
body> meta=<bytes>`, then the body: a JSON document of `meta` bytes (timestamp memory, alert states,
source tokens, counters, the engine's series keys and symbols, and where each array lies) followed
by the engine's arrays as raw little-endian float64/int64 (collector/engine/layout.py). A
non-finite float in the JSON part is written as null and read back as NaN (orjson's convention).
Loading never executes code (no pickle: numbers and strings only), and any damage (the checksum
catches every flipped byte) raises `DamagedCheckpoint` instead of a half-read state.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from collector.engine.engine import Engine
from collector.run import state_data
from collector.store.lineproto import UniqueTimestamps

FORMAT_VERSION = 5
MAGIC = b"stratmon-checkpoint"
_DTYPES = {"f8": np.dtype("<f8"), "i8": np.dtype("<i8")}
_CHUNK = 20_000  # list items per orjson call: the background encoder yields the GIL between chunks


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


@dataclass
class Snapshot:
    """A checkpoint's content, copied in the engine thread: the background writer reads only this."""

    engine: state_data.EngineState
    data: dict[str, Any]  # JSON-able
    stamps: dict[str, np.ndarray] = field(default_factory=dict)  # buffers data["stamps"] is copied into


def snapshot(checkpoint: Checkpoint, reuse: Snapshot | None = None) -> Snapshot:
    """The checkpoint's content as copies; reuse: an earlier snapshot already written (its buffers are reused)."""
    stamps = reuse.stamps if reuse is not None else {}
    return Snapshot(
        state_data.engine_state(checkpoint.engine, reuse.engine if reuse is not None else None),
        {
            "stamps": state_data.stamps_data(checkpoint.stamps, stamps or None),
            "seen_position": checkpoint.seen_position,
            "alerts": checkpoint.alerts,
            "tokens": dict(checkpoint.tokens),
            "counters": asdict(checkpoint.counters),
        },
        stamps,
    )


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """The cyclic collector paused: the in-thread copy allocates ~1M small objects (alert states), which would
    trigger full passes over the whole heap in the middle of the engine thread's block (about half of it)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def reserve(snap: Snapshot, checkpoint: Checkpoint) -> None:
    """Fit `snap`'s buffers to the checkpoint's state, pages written (state_data.reserve): off the engine thread."""
    state_data.reserve(snap.engine, checkpoint.engine)
    rows = len(checkpoint.stamps)
    if len(snap.stamps.get("keys", ())) < rows:
        # np.full writes every page (np.zeros would map them lazily: the engine thread would fault them in)
        snap.stamps = {name: np.full(rows + rows // 4, 0, np.int64) for name in ("keys", "owners")}


def _dumps(value: Any) -> bytes:
    """JSON; a long list in chunks (each its own call, so other threads run in between).

    orjson is fast but stops at 64-bit integers; the standard library does not.
    """
    if isinstance(value, list) and len(value) > _CHUNK:
        parts = [_dumps(value[i : i + _CHUNK])[1:-1] for i in range(0, len(value), _CHUNK)]
        return b"[" + b",".join(parts) + b"]"
    if isinstance(value, dict):
        return b"{" + b",".join(orjson.dumps(str(k)) + b":" + _dumps(v) for k, v in value.items()) + b"}"
    try:
        return orjson.dumps(value)
    except TypeError:  # e.g. a random generator's 128-bit state in a source token
        return json.dumps(value, separators=(",", ":")).encode()


def _binary(snap: Snapshot) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON part, and the arrays that go as raw bytes: the engine's, and any numpy array one level
    down in the data (e.g. {"stamps": {"keys": array}} → array "stamps.keys", null in the JSON)."""
    arrays = dict(snap.engine.arrays)
    data = dict(snap.data)
    for key, value in snap.data.items():
        if isinstance(value, dict) and any(isinstance(v, np.ndarray) for v in value.values()):
            data[key] = {k: None if isinstance(v, np.ndarray) else v for k, v in value.items()}
            arrays |= {f"{key}.{k}": v for k, v in value.items() if isinstance(v, np.ndarray)}
    return data, arrays


def _pieces(snap: Snapshot) -> tuple[bytes, list[memoryview]]:
    """(header line, body pieces): the JSON part, then each array's bytes."""
    data, arrays = _binary(snap)
    layout, offset, blobs = [], 0, []
    for name, array in arrays.items():
        kind = "f8" if array.dtype.kind == "f" else "i8"
        raw = np.ascontiguousarray(array, _DTYPES[kind])
        layout.append([name, kind, list(array.shape), offset])
        offset += raw.nbytes
        blobs.append(raw.reshape(-1).view(np.uint8).data)  # bytes, also of an array with no rows
    meta = dict(data, engine=state_data.engine_meta(snap.engine), arrays=layout)
    body = [memoryview(_dumps(meta)), *blobs]
    digest = hashlib.sha256()
    for piece in body:
        digest.update(piece)
    header = b"%s %d sha256=%s meta=%d\n" % (MAGIC, FORMAT_VERSION, digest.hexdigest().encode(), len(body[0]))
    return header, body


def encode(checkpoint: Checkpoint | Snapshot) -> bytes:
    snap = checkpoint if isinstance(checkpoint, Snapshot) else snapshot(checkpoint)
    header, body = _pieces(snap)
    return header + b"".join(body)


def _arrays(layout: Any, raw: memoryview, data: dict[str, Any]) -> dict[str, np.ndarray]:
    """The engine's arrays; the others ("key.field") are put back into `data`."""
    arrays, offset = {}, 0
    for name, kind, shape, at in layout:
        dtype = _DTYPES[kind]
        key, dot, part = str(name).partition(".")
        if not (name in state_data.ARRAYS or (dot and isinstance(data.get(key), dict) and part in data[key])):
            raise ValueError(f"unexpected array {name!r}")
        if name in arrays or at != offset:
            raise ValueError(f"array {name!r} repeated or out of place")
        if not all(type(n) is int and n >= 0 for n in shape) or len(shape) not in (1, 2):
            raise ValueError(f"array {name!r} has shape {shape!r}")
        count = int(np.prod(shape))
        if offset + count * dtype.itemsize > len(raw):
            raise ValueError(f"array {name!r} runs past the end")
        array = np.frombuffer(raw, dtype, count, offset).reshape(shape)
        offset += count * dtype.itemsize
        if dot:
            data[key][part] = array
        elif (array.dtype.kind == "f") != (name in ("sf", "hf", "pf", "lf", "yf")):
            raise ValueError(f"array {name!r} of the wrong type")
        else:
            arrays[name] = array
    if offset != len(raw):
        raise ValueError("bytes after the last array")
    return arrays


def decode(raw: bytes, capital_by_account: dict[str, float], default_capital: float, stamps: int) -> Checkpoint:
    """The checkpoint in `raw`; DamagedCheckpoint with the reason for anything unexpected."""
    header, newline, body = raw.partition(b"\n")
    parts = header.split(b" ")
    if not newline or len(parts) != 4 or parts[0] != MAGIC or not parts[2].startswith(b"sha256="):
        raise DamagedCheckpoint("not a stratmon checkpoint (bad header)")
    if parts[1] != str(FORMAT_VERSION).encode():
        raise DamagedCheckpoint(f"format version {parts[1].decode(errors='replace')}, expected {FORMAT_VERSION}")
    if hashlib.sha256(body).hexdigest().encode() != parts[2][len(b"sha256=") :]:
        raise DamagedCheckpoint("checksum mismatch (the file is corrupted or truncated)")
    try:
        if not parts[3].startswith(b"meta=") or not parts[3][5:].isdigit() or int(parts[3][5:]) > len(body):
            raise ValueError("bad meta length")
        size = int(parts[3][5:])
        try:
            data = orjson.loads(body[:size])
        except orjson.JSONDecodeError:  # written by the standard library (NaN, big integers)
            data = json.loads(body[:size])
        position = data["seen_position"]
        counters = data["counters"]
        if set(counters) != {f.name for f in fields(Counters)} or not all(type(v) is int for v in counters.values()):
            raise ValueError("bad counters")
        if not isinstance(data["tokens"], dict) or not isinstance(data["alerts"], list):
            raise ValueError("bad tokens or alerts")
        arrays = _arrays(data["arrays"], memoryview(body)[size:], data)
        return Checkpoint(
            engine=state_data.engine_from(data["engine"], arrays, capital_by_account, default_capital),
            stamps=state_data.stamps_from(data["stamps"], stamps),
            seen_position=None if position is None else (int(position[0]), int(position[1])),
            alerts=data["alerts"],
            tokens=data["tokens"],
            counters=Counters(**counters),
        )
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise DamagedCheckpoint(f"unexpected content ({type(exc).__name__}: {exc})") from None


def save(path: Path, checkpoint: Checkpoint | Snapshot) -> int:
    """Write to a temporary file, fsync, rename: a crash leaves the old or the new checkpoint, never half.

    Safe in a background thread given a `Snapshot` (it reads nothing else).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    header, body = _pieces(checkpoint if isinstance(checkpoint, Snapshot) else snapshot(checkpoint))
    try:
        with open(tmp, "wb") as handle:
            handle.write(header)
            for piece in body:
                handle.write(piece)
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
    return len(header) + sum(len(piece) for piece in body)


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
