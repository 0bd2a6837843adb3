"""Point keys of `fills` that distinct fill ids never share, whatever process wrote them.

InfluxDB keeps one point per (measurement, tag set, time), and ids are fields, not tags. A fill's
key is its series plus a deterministic timestamp (`UniqueTimestamps`): ts, plus crc32(fill_id) mod
1000 ns when ts has no sub-µs digits, moved on by 1 ns while the slot belongs to another fill id.
Memory alone only knows this process's fills, so before a batch is written the slots it may
probe are read back from InfluxDB (one request per batch of up to 200 statements, one per
series and cluster of nearby timestamps) and treated as taken by their stored fill id. A fill written again (a replay,
a re-ingest) finds its own id and keeps its key, so re-writes stay idempotent.

Not covered: two writers that both read before either has written the same slot (they race
within one read-then-write round trip); a key pushed more than 1000 + batch size ns past its ts by
clashes (checked against memory only); and while InfluxDB cannot be read, only memory (logged).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from collector.model import Fill
from collector.store.lineproto import UniqueTimestamps
from collector.store.reader import QueryError, Reader, escape_string

log = logging.getLogger(__name__)

SLOT_SPAN_NS = 1000  # the crc32 offset range; probing rarely goes further
CLUSTER_GAP_NS = 60 * 1_000_000_000  # timestamps closer than this share one range statement (one scan)
STATEMENTS_PER_REQUEST = 200
PROBE_LIMIT_NS = 1_000_000  # a fill's key lies within 1 ms of its ts (a million clashes would be needed)


def series_key(fill: Fill) -> str:
    """The tag set of a `fills` point, as the de-clash memory names it."""
    return f"{fill.account}|{fill.strategy}|{fill.symbol}|{fill.side}"


def _tag_condition(fill: Fill) -> str:
    """The InfluxQL condition selecting the fill's series."""
    tags = (("account", fill.account), ("strategy", fill.strategy), ("symbol", fill.symbol), ("side", fill.side))
    return " AND ".join(f"{name}={escape_string(value)}" for name, value in tags)


def _key_of(tags: dict[str, str]) -> str:
    return f"{tags.get('account')}|{tags.get('strategy')}|{tags.get('symbol')}|{tags.get('side')}"


def _clusters(times: list[int], margin: int) -> list[tuple[int, int]]:
    """Sorted, merged [lo, hi] ranges covering each t … t + margin."""
    ranges: list[tuple[int, int]] = []
    for t in sorted(times):
        if ranges and t - ranges[-1][1] <= CLUSTER_GAP_NS:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], t + margin))
        else:
            ranges.append((t, t + margin))
    return ranges


class StoredKeys:
    """Reads which (series, ts) slots of `fills` are taken in InfluxDB, and by which fill id.

    One statement per series and cluster of nearby times, with the series' tags in the WHERE
    clause: the index then picks the one series (a time range alone scans every series of
    `fills`, ~0.4 s per statement on a desk's worth of series; measured with influxd 1.6). A
    batch touching more series than one request holds reads its time clusters across all
    series instead (GROUP BY *): one scan rather than thousands of statements.
    """

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self._warned = False

    def taken(self, fills: Sequence[Fill], keys: Sequence[str], margin: int) -> dict[tuple[str, int], str]:
        """Stored slots within ts … ts + SLOT_SPAN_NS + margin of each fill; `keys[i]` = series_key(fills[i])."""
        statements: list[tuple[str | None, str]] = []
        if len(set(keys)) > STATEMENTS_PER_REQUEST:  # many series: one scan per time cluster beats one per series
            for lo, hi in _clusters([f.ts for f in fills], SLOT_SPAN_NS + margin):
                statements.append((None, f"SELECT fill_id FROM fills WHERE time >= {lo} AND time <= {hi} GROUP BY *"))
        else:
            by_series: dict[str, tuple[Fill, list[int]]] = {}
            for fill, key in zip(fills, keys, strict=True):
                by_series.setdefault(key, (fill, []))[1].append(fill.ts)
            for key, (fill, times) in by_series.items():
                tags = _tag_condition(fill)
                for lo, hi in _clusters(times, SLOT_SPAN_NS + margin):
                    statements.append(
                        (key, f"SELECT fill_id FROM fills WHERE {tags} AND time >= {lo} AND time <= {hi}")
                    )
        found: dict[tuple[str, int], str] = {}
        for start in range(0, len(statements), STATEMENTS_PER_REQUEST):
            chunk = statements[start : start + STATEMENTS_PER_REQUEST]
            try:
                results = self.reader.raw(";".join(statement for _, statement in chunk))
            except QueryError as exc:
                if "database not found" in str(exc) or "not executed" in str(exc):
                    return found  # no database yet (1.x answers several statements with "not executed")
                if not self._warned:
                    reason = str(exc).split(" (query: ")[0][:300]
                    log.warning("cannot read stored fill keys (%s): fill timestamps de-clashed in memory only", reason)
                    self._warned = True
                return found
            self._warned = False
            for (wanted, _), result in zip(chunk, results, strict=True):
                for series in result.get("series", []):
                    name = wanted or _key_of(series.get("tags") or {})
                    for ts, fill_id in series.get("values", []):
                        found[(name, int(ts))] = str(fill_id)
        return found


@dataclass(frozen=True)
class Slots:
    """A batch's series keys and the slots of them that InfluxDB holds (slot → stored fill id)."""

    keys: list[str]
    taken: dict[tuple[str, int], str]


class FillKeys:
    """Assigns the timestamps of a batch of fills: memory of this process plus what InfluxDB holds."""

    def __init__(self, stamps: UniqueTimestamps, stored: StoredKeys | None) -> None:
        self.stamps = stamps
        self.stored = stored

    def read(self, fills: Sequence[Fill]) -> Slots:
        """The stored slots the batch may probe: the InfluxDB half of `assign`, which may run on another thread
        while the batch is booked, as long as `assign` of the batch follows it."""
        keys = list(map(series_key, fills))
        # the read covers each ts … ts + 1000 + len(fills) ns: where a probe ends unless >1000 slots clash
        taken = self.stored.taken(fills, keys, len(fills)) if self.stored is not None and fills else {}
        return Slots(keys, taken)

    def assign(self, fills: Sequence[Fill], slots: Slots | None = None) -> list[int]:
        """The keys of `fills`, given `read(fills)` (read here when not given)."""
        if slots is None:
            slots = self.read(fills)
        assign, taken = self.stamps.assign, slots.taken
        return [assign(key, f.ts, f.fill_id, taken) for key, f in zip(slots.keys, fills, strict=True)]


def delete_fill(reader: Reader, fill: Fill) -> int:
    """Remove the `fills` point of `fill` (a bust or a correction); returns how many points went."""
    tags = _tag_condition(fill)
    found = reader.raw(
        f"SELECT fill_id FROM fills WHERE {tags} AND time >= {fill.ts} AND time <= {fill.ts + PROBE_LIMIT_NS}"
        f" AND fill_id = {escape_string(fill.fill_id)}"
    )
    times = [int(row[0]) for result in found for series in result.get("series", []) for row in series["values"]]
    for ts in times:
        reader.raw(f"DELETE FROM fills WHERE {tags} AND time >= {ts} AND time <= {ts}")
    return len(times)
