"""Line protocol serialization (ns timestamps, floats always as floats, ids as string fields)."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Mapping

import numpy as np

from collector.idwindow import HashRing
from collector.model import Fill

FieldValue = float | int | str | bool


def _escape_key(text: str) -> str:
    """Tag keys/values and field keys: escape backslash, comma, equals and space."""
    if not any(c in text for c in "\\, ="):
        return text
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _escape_measurement(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ")


def string_field(text: str) -> str:
    if '"' in text or "\\" in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text + '"'


def _field(value: FieldValue) -> str:
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return f"{int(value)}i"
    if isinstance(value, float | np.floating):
        return repr(float(value))  # shortest repr that round-trips exactly (numpy's repr is np.float64(…))
    return string_field(value)


def point(measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue | None], ts_ns: int) -> str:
    """One line; `None` fields are left out (undefined metrics are absent, never NaN)."""
    tag_part = "".join(
        f",{_escape_key(k)}={_escape_key(v)}" for k, v in sorted(tags.items()) if v is not None and v != ""
    )
    field_part = ",".join(f"{_escape_key(k)}={_field(v)}" for k, v in fields.items() if v is not None)
    if not field_part:
        raise ValueError(f"a {measurement} point needs at least one field")
    return f"{_escape_measurement(measurement)}{tag_part} {field_part} {ts_ns}"


def fill_line(fill: Fill, ts_ns: int, realized_pnl: float | None = None) -> str:
    """The `fills` point (docs/schema.md)."""
    return f"{fill_point(fill, realized_pnl)} {ts_ns}"


def fill_point(fill: Fill, realized_pnl: float | None = None) -> str:
    """The `fills` line without its timestamp (built before the key is known). Tags are charset-checked already,
    so no escaping is needed."""
    qty, price = fill.qty, fill.price
    line = (
        f"fills,account={fill.account},side={fill.side},strategy={fill.strategy},symbol={fill.symbol}"
        f" qty={qty!r},price={price!r},fee={fill.fee!r},notional={qty * price * fill.multiplier!r}"
        f",multiplier={fill.multiplier!r},fill_id={string_field(fill.fill_id)}"
    )
    if fill.order_id is not None:
        line += f",order_id={string_field(fill.order_id)}"
    if fill.arrival_price is not None:
        line += f",slippage_bps={fill.slippage_bps!r}"
    if fill.order_ts is not None:
        line += f",latency_ms={fill.latency_ms!r}"
    if realized_pnl is not None:
        line += f",realized_pnl={realized_pnl!r}"
    return line


def _hash64(text: str) -> int:
    """A 64-bit hash that every process computes alike (checkpoints keep it)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)


class UniqueTimestamps:
    """Deterministic per-series timestamps so two fills never overwrite each other in InfluxDB.

    InfluxDB keeps one point per (measurement, tags, time). Fills often carry ms or µs
    timestamps and partial fills of one order share them. A timestamp with no sub-µs digits
    gets an offset of crc32(fill_id) mod 1000 ns (so separate processes agree); a remaining
    clash with another fill id (in this process, or in `stored`: see fillkeys.py) moves the later
    fill on by 1 ns. The same input in the same order therefore always maps to the same keys, so
    re-writes are idempotent. Memory is bounded by `capacity` remembered keys, each a 64-bit hash
    of (series, ts) and of its fill id in a HashRing (~24–32 bytes; a wrong answer needs two
    different keys or fill ids with equal 64-bit BLAKE2b hashes).
    """

    def __init__(self, capacity: int = 2_000_000) -> None:
        self.capacity = capacity
        self._ring = HashRing(capacity)

    def __len__(self) -> int:
        return len(self._ring)

    def assign(self, series: str, ts_ns: int, fill_id: str, stored: Mapping[tuple[str, int], str] | None = None) -> int:
        """The key of this fill; `stored` = slots taken in InfluxDB (by other processes too)."""
        ts = ts_ns
        if ts % 1000 == 0:
            ts += zlib.crc32(fill_id.encode()) % 1000
        ring, owner = self._ring, _hash64(fill_id)
        while True:
            key = _hash64(f"{series}|{ts}")
            found = ring.probe(key, key & ring.mask)
            if found < 0:  # remembered here
                if ring.value(-found - 1) == owner:
                    return ts
            else:
                other = stored.get((series, ts)) if stored else None
                if other is None or other == fill_id:
                    ring.insert(key, found, owner)
                    return ts
            ts += 1

    def export(self, out: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """The remembered keys and owners, oldest first (checkpoint data: int64 arrays, stored as raw bytes);
        out: {keys, owners} buffers to copy into when long enough."""
        keys, owners = self._ring.ordered(None if out is None else (out["keys"], out["owners"]))
        return {"keys": keys, "owners": owners}

    @classmethod
    def restore(cls, data: Mapping[str, np.ndarray | list[int]], capacity: int) -> UniqueTimestamps:
        keys, owners = np.asarray(data["keys"], dtype=np.int64), np.asarray(data["owners"], dtype=np.int64)
        if keys.shape != owners.shape or keys.ndim != 1:
            raise ValueError("timestamp memory: keys and owners differ in length")
        stamps = cls(capacity)
        stamps._ring.fill(keys, owners)
        return stamps
