"""The last `capacity` distinct keys, exact, in 8 + 4·slots/capacity bytes per key (12 + … above ~5.5M).

A key is a byte line (`account<TAB>fill_id<LF>`) kept in an append-only journal file; memory holds
only a ring of (32-bit hash, 32-bit journal offset: see IdWindow) in arrival order and an open-addressing table of ring
positions (linear probing, int32, slots = the power of two ≥ 2·capacity). A hash match is confirmed
by reading the line back from the journal, so a hash collision never makes a new key a duplicate,
and 32 bits are enough: the table slot already fixes log2(slots) of them (24 at the default
window), so a new key meets an equal hash about once per 10³ keys there and reads one recent,
page-cached journal line (duplicates are rare, and so are those reads). Eviction is FIFO and
free: the oldest ring position is overwritten; the table slot that pointed at it then aliases the
newer key in that position, which is harmless (a lookup compares that key's hash) but keeps the
slot occupied, so when occupied slots pass MAX_LOAD of the table it is rebuilt from the ring in one
vectorized pass (sorted by home slot, position_i = i + cummax(home_i − i)).

Batches are checked vectorized: a key is a duplicate when it is in the window as it was before the
batch, or equals an earlier key of the batch. (A key evicted by an earlier key of the same batch
is thus still a duplicate: it was seen, so nothing valid is dropped.)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

EMPTY = -1
MAX_LOAD = 0.7  # occupied (live + aliased) share of the table that triggers a rebuild
COPY_CHUNK = 1 << 22
MAX_LINE_BYTES = 4 * 64 + 1 + 4 * 128 + 1  # account, tab, fill_id (64 and 128 characters of ≤ 4 UTF-8 bytes), LF
OFFSET_MASK = 0xFFFFFFFF

IntArray = npt.NDArray[np.int64]
KeyArray = npt.NDArray[np.signedinteger[Any]]  # hashes: int64, or int32 in IdWindow


def low32(h: int) -> int:
    """The low 32 bits of a hash as a signed int32 value (what `low32_array` stores)."""
    return ((h & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000


def low32_array(h: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
    return (h & 0xFFFFFFFF).astype(np.uint32).view(np.int32)


def id_line(account: str, fill_id: str) -> bytes:
    """A key of the duplicate-id memory: both parts are free of control characters (the fill contract)."""
    return f"{account}\t{fill_id}\n".encode()


class HashRing:
    """A FIFO ring of `capacity` (key, value) pairs and an open-addressing table over it.

    Keys are hashes of `key_dtype` (64-bit, or 32-bit when the caller confirms matches itself), values of
    `value_dtype`; what a match means is the caller's (IdWindow confirms it in its journal)."""

    def __init__(
        self,
        capacity: int,
        key_dtype: type[np.signedinteger[Any]] = np.int64,
        value_dtype: type[np.integer[Any]] = np.int64,
    ) -> None:
        self.capacity = capacity
        size = 1 << max(4, (2 * capacity - 1).bit_length())
        self._mask = size - 1
        self._limit = int(MAX_LOAD * size)
        # written (np.full, not np.zeros) so every page is resident now: the process's RSS is the window's
        # full size from the first id on, instead of creeping up over the first `capacity` ids
        self._table = np.full(size, EMPTY, dtype=np.int32)
        self._hash = np.full(capacity, 0, dtype=key_dtype)
        self._value = np.full(capacity, 0, dtype=value_dtype)
        # memoryviews: a scalar read or write through them costs a third of numpy's
        self._views = (self._table.data, self._hash.data, self._value.data)
        self._used = 0  # occupied table slots
        self.count = 0  # keys in the ring
        self._next = 0  # ring position of the next key

    def __len__(self) -> int:
        return self.count

    @property
    def mask(self) -> int:
        """Slots - 1: a key's home slot is `key & mask`."""
        return self._mask

    @property
    def nbytes(self) -> int:
        return self._table.nbytes + self._hash.nbytes + self._value.nbytes

    def _oldest(self) -> int:
        return self._next if self.count == self.capacity else 0

    def ordered(self, out: tuple[KeyArray, IntArray] | None = None) -> tuple[KeyArray, IntArray]:
        """Keys and values, oldest first: two slice copies each, into `out`'s first rows when they fit
        (a checkpoint in the engine thread reuses pre-faulted buffers instead of faulting in fresh ones)."""
        n, start = self.count, self._oldest()
        if out is not None and len(out[0]) >= n and len(out[1]) >= n:
            keys, values = out[0][:n], out[1][:n]
        else:
            keys, values = np.empty_like(self._hash, shape=n), np.empty_like(self._value, shape=n)
        head = min(n, self.capacity - start)  # from the oldest to the ring's end, the rest from its start
        for target, source in ((keys, self._hash), (values, self._value)):
            target[:head], target[head:] = source[start : start + head], source[: n - head]
        return keys, values

    def fill(self, keys: KeyArray, values: IntArray) -> None:
        """Start over with these pairs (oldest first; the last `capacity` are kept)."""
        keys, values = keys[-self.capacity :], values[-self.capacity :]
        n = len(keys)
        self._hash[:n], self._value[:n] = keys, values
        self.count, self._next = n, n % self.capacity
        self._rebuild()

    def probe(self, h: int, slot: int, accept: Callable[[int], bool] | None = None) -> int:
        """From `slot` on: -(position + 1) of key `h` (if `accept` confirms it), else the empty slot for it."""
        table, hashes, mask = self._views[0], self._views[1], self._mask
        while True:
            position = table[slot]
            if position == EMPTY:
                return slot
            if hashes[position] == h and (accept is None or accept(position)):
                return -position - 1
            slot = (slot + 1) & mask

    def value(self, position: int) -> int:
        return int(self._views[2][position])

    def insert(self, h: int, slot: int, value: int) -> None:
        """A new key at the empty slot its probe ended at (the oldest key goes when the ring is full)."""
        table, hashes, values = self._views
        position = self._next
        table[slot], hashes[position], values[position] = position, h, value
        self._advance(1)

    def _insert_many(self, h: KeyArray, ends: IntArray, values: IntArray) -> None:
        m = len(h)
        positions = (self._next + np.arange(m)) % self.capacity
        self._place(positions, ends)
        self._hash[positions], self._value[positions] = h, values
        self._advance(m)

    def _place(self, positions: IntArray, slots: IntArray) -> None:
        """Ring `positions` into the table, each at the first empty slot from its `slots` entry on.

        Two keys aiming at one slot: the assignment keeps one of them and the other probes on, so every
        key's slot stays reachable from its home through occupied slots only."""
        table, mask = self._table, self._mask
        while positions.size:
            free = table[slots] == EMPTY
            table[slots[free]] = positions[free]
            going = table[slots] != positions
            positions, slots = positions[going], (slots[going] + 1) & mask

    def _advance(self, m: int) -> None:
        self._next = (self._next + m) % self.capacity
        if self.count < self.capacity:
            self.count = min(self.capacity, self.count + m)
        self._used += m
        if self._used > self._limit:
            self._rebuild()

    def _rebuild(self) -> None:
        """Every key of the ring placed again from its home slot, the aliases gone."""
        self._table.fill(EMPTY)
        self._place(np.arange(self.count, dtype=np.int64), self._hash[: self.count] & self._mask)
        self._used = self.count


class IdWindow(HashRing):
    """Byte lines in a journal; the ring's values are their journal offsets.

    Offsets are kept mod 2³² when the window cannot span 4 GiB of journal (capacity × MAX_LINE_BYTES
    < 2³²: up to ~5.5M ids): the window is the journal's suffix, so offset = length − ((length − stored)
    mod 2³²). Larger windows keep 64-bit offsets."""

    def __init__(self, capacity: int, journal: BinaryIO, length: int = 0, hasher: Callable[[bytes], int] = hash):
        """`journal` is open for reading and appending at `length` bytes; `hasher` is replaceable for tests."""
        self._narrow = capacity * MAX_LINE_BYTES < 1 << 32
        super().__init__(capacity, np.int32, np.uint32 if self._narrow else np.int64)
        self._hasher = hasher
        self.journal = journal
        self.length = length  # bytes in the journal (all written, some maybe still buffered)
        self._unflushed = False

    def oldest_offset(self) -> int:
        """Journal offset of the oldest key in the window (the window is the journal's suffix from here)."""
        return self._offset(int(self._value[self._oldest()])) if self.count else self.length

    def _offset(self, stored: int) -> int:
        return self.length - ((self.length - stored) & OFFSET_MASK) if self._narrow else stored

    def _stored(self, offsets: IntArray) -> IntArray:
        return offsets & OFFSET_MASK if self._narrow else offsets

    def _confirmed(self, position: int, line: bytes) -> bool:
        if self._unflushed:
            self.journal.flush()
            self._unflushed = False
        return os.pread(self.journal.fileno(), len(line), self._offset(self.value(position))) == line

    def _write(self, data: bytes) -> None:
        self.journal.write(data)
        self.length += len(data)
        self._unflushed = True

    def add(self, line: bytes) -> bool:
        """True when new (journaled and remembered), False for a duplicate."""
        h = low32(self._hasher(line))
        slot = self.probe(h, h & self._mask, lambda position: self._confirmed(position, line))
        if slot < 0:
            return False
        self.insert(h, slot, self.length & OFFSET_MASK if self._narrow else self.length)
        self._write(line)
        return True

    def add_many(self, lines: Sequence[bytes]) -> list[bool]:
        """`add` for each line in order, vectorized: the table is probed for all lines at once."""
        if len(lines) > self.capacity:
            return self.add_many(lines[: self.capacity]) + self.add_many(lines[self.capacity :])
        n = len(lines)
        if n == 0:
            return []
        hashes = low32_array(np.fromiter(map(self._hasher, lines), dtype=np.int64, count=n))
        new = np.ones(n, dtype=bool)
        order = np.argsort(hashes, kind="stable")
        ordered = hashes[order]
        twins = np.flatnonzero(ordered[1:] == ordered[:-1])
        if twins.size:  # equal hashes inside the batch (a resent fill, or a collision): compare the lines
            first: dict[bytes, int] = {}
            for i in sorted({int(order[k]) for k in twins} | {int(order[k + 1]) for k in twins}):
                if first.setdefault(lines[i], i) != i:
                    new[i] = False
        candidates = np.flatnonzero(new)
        h = hashes[candidates]
        ends = self._lookup(h, candidates, lines, new)
        keep = new[candidates]
        if not keep.all():
            h, ends, candidates = h[keep], ends[keep], candidates[keep]
        kept = lines if len(candidates) == n else [lines[i] for i in candidates.tolist()]
        if kept:
            lengths = np.fromiter(map(len, kept), dtype=np.int64, count=len(kept))
            self._insert_many(h, ends, self._stored(self.length + np.cumsum(lengths) - lengths))
            self._write(b"".join(kept))
        return new.tolist()

    def _lookup(
        self, h: KeyArray, candidates: IntArray, lines: Sequence[bytes], new: npt.NDArray[np.bool_]
    ) -> IntArray:
        """The empty slot ending each candidate's probe; a confirmed duplicate is cleared in `new`."""
        table, hashes, mask = self._table, self._hash, self._mask
        slot = h & mask
        ends = np.empty(len(h), dtype=np.int64)
        active = np.arange(len(h))
        matches: list[tuple[int, int, int]] = []  # (candidate, slot, ring position) whose hash matched
        while active.size:
            probe = slot[active]
            position = table[probe]
            empty = position == EMPTY
            match = ~empty & (hashes[np.maximum(position, 0)] == h[active])
            ends[active[empty]] = probe[empty]
            if match.any():
                matches += zip(active[match].tolist(), probe[match].tolist(), position[match].tolist(), strict=True)
            going = ~(empty | match)
            active = active[going]
            slot[active] = (probe[going] + 1) & mask
        for k, at, position in matches:
            line = lines[int(candidates[k])]
            if self._confirmed(position, line):
                new[candidates[k]] = False
            else:  # a true hash collision: the probe goes on
                end = self.probe(int(h[k]), (at + 1) & mask, partial(self._confirmed, line=line))
                if end < 0:
                    new[candidates[k]] = False
                ends[k] = end
        return ends

    def load(self, lines: Sequence[bytes]) -> None:
        """Remember the journal's last `capacity` lines (`lines` are all of it, in order): a restart."""
        kept = lines[-self.capacity :]
        lengths = np.fromiter(map(len, kept), dtype=np.int64, count=len(kept))
        offsets = self.length - int(lengths.sum()) + np.cumsum(lengths) - lengths
        hashes = low32_array(np.fromiter(map(self._hasher, kept), dtype=np.int64, count=len(kept)))
        self.fill(hashes, self._stored(offsets))

    def move_to(self, journal: BinaryIO) -> int:
        """Copy the window's lines (the journal's suffix from the oldest key) to a new, empty journal and
        continue there; returns the bytes copied."""
        self.journal.flush()
        start, source, copied = self.oldest_offset(), self.journal.fileno(), 0
        while start + copied < self.length:
            chunk = os.pread(source, min(COPY_CHUNK, self.length - start - copied), start + copied)
            journal.write(chunk)
            copied += len(chunk)
        self._value[: self.count] -= self._value.dtype.type(start & OFFSET_MASK if self._narrow else start)
        self.journal, self.length = journal, copied
        return copied
