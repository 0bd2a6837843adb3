"""The bust log: the last `window` fills of every book, kept as rows of a numpy array per book.

A `Fill` object with its boxed numbers and strings, its deque slot and an (account, fill_id) →
book entry cost ~570 B; a row costs 73 B plus its two id columns (16 B each at least): numbers
in float64/int64 columns, symbol/side/venue/action as indexes into one pool of strings shared by
all books, `fill_id` and `order_id` as UTF-8 bytes in fixed-width columns that widen (per book)
to the longest id seen, up to MAX_ID_BYTES. A fill a row cannot give back exactly (an id longer
than that or not encodable, a number that is not a float/int64, a `ref_fill_id`) keeps its `Fill`
object next to its row, so `fills()` always returns fills equal to the ones added, field by field
and type by type.

Each book's rows form a ring in the order fills were added: [first, head) left the log and wait
to be booked into the book's base engine FOLD at a time (revise.py), [head, end) is the log; the
newest fills wait in `staged` as objects until STAGE of them are encoded in one go.
"""

from __future__ import annotations

from functools import partial
from itertools import repeat
from operator import attrgetter, is_not
from typing import TYPE_CHECKING, Any

import numpy as np

from collector.model import Fill

if TYPE_CHECKING:
    from collector.engine.engine import Engine

BookKey = tuple[str, str]
FOLD = 64  # fills that left a book's log are booked into its base this many at a time (one kernel call)
STAGE = 32  # newest fills kept as objects, then encoded into rows together
MIN_ID_BYTES, MAX_ID_BYTES = 16, 64
_I64 = 2**63
_ARRIVAL, _ORDER_TS, _ORDER_ID, _OBJECT = 1, 2, 4, 8  # row flags: field present / row's fill kept as an object
_NUMBERS = [("ts", "<i8"), ("qty", "<f8"), ("price", "<f8"), ("fee", "<f8"), ("arrival", "<f8")]
_NUMBERS += [("order_ts", "<i8"), ("multiplier", "<f8")]
_POOLED = [("symbol", "<i4"), ("side", "<i4"), ("venue", "<i4"), ("action", "<i4"), ("flags", "u1")]


def _dtype(width: int) -> np.dtype[Any]:
    return np.dtype([*_NUMBERS, *_POOLED, ("fill_id", f"S{width}"), ("order_id", f"S{width}")])


_FIELDS = attrgetter(  # the fields a row keeps, then the ones that must have one value for a row to exist
    *("ts", "qty", "price", "fee", "arrival_price", "order_ts", "multiplier", "symbol", "side", "venue", "action"),
    *("fill_id", "order_id", "ref_fill_id", "account", "strategy"),
)
_PLACEHOLDER = (0, 0.0, 0.0, 0.0, None, None, 0.0, None, None, None, None, "", None, None, None, None)
_NONE = type(None)
_FLOAT, _INT, _STR = (
    set[type]({float}),
    set[type]({int}),
    set[type]({str}),
)  # the exact types a row gives back, per field of _FIELDS
_TYPES = [_INT, _FLOAT, _FLOAT, _FLOAT, _FLOAT | {_NONE}, _INT | {_NONE}, _FLOAT, _STR, _STR, _STR | {_NONE}, _STR]
_TYPES += [_STR, _STR | {_NONE}, {_NONE}]
_is_not_none = partial(is_not, None)


def _inexact(columns: list[list[Any]], key: BookKey) -> set[int]:
    """Indexes of the fills a row would not give back exactly (they are kept as objects)."""
    bad: set[int] = set()
    for column, types in zip(columns, _TYPES, strict=False):  # the last two, account and strategy: below
        if not set(map(type, column)) <= types:
            bad.update(i for i, x in enumerate(column) if type(x) not in types)
    for column in (columns[0], columns[5]):  # ts and order_ts: int64
        ints = [x for x in column if type(x) is int]
        if ints and not (min(ints) >= -_I64 and max(ints) < _I64):
            bad.update(i for i, x in enumerate(column) if type(x) is int and not -_I64 <= x < _I64)
    for column in (columns[11], columns[12]):  # ids: UTF-8, no NUL (numpy strips trailing ones), not too long
        try:
            data = [x.encode() for x in column if type(x) is str]
            fits = max(map(len, data), default=0) <= MAX_ID_BYTES and b"\0" not in b"".join(data)
        except UnicodeEncodeError:  # a lone surrogate
            fits = False
        if not fits:
            bad.update(i for i, x in enumerate(column) if type(x) is str and _id_bytes(x) is None)
    accounts, strategies = columns[-2], columns[-1]
    if accounts.count(key[0]) + strategies.count(key[1]) < 2 * len(accounts):
        bad.update(i for i, book in enumerate(zip(accounts, strategies, strict=True)) if book != key)
    return bad


def _id_bytes(text: str) -> bytes | None:
    """`text` as bytes a fixed-width column gives back unchanged (numpy strips trailing NULs), or None."""
    try:
        data = text.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return None
    return data if len(data) <= MAX_ID_BYTES and b"\0" not in data else None


class Strings:
    """Symbols, sides, venues and actions, each stored once; a row holds its index (0: None)."""

    def __init__(self) -> None:
        self.index: dict[str | None, int] = {None: 0}
        self.values: list[str | None] = [None]

    def of(self, column: list[str | None]) -> list[int]:
        found = list(map(self.index.get, column))
        if None in found:
            for value in column:
                if value not in self.index:
                    self.index[value] = len(self.values)
                    self.values.append(value)
            found = list(map(self.index.__getitem__, column))
        return found  # type: ignore[return-value]


class BookRing:
    """One book's fills in the order added: the log, the fills leaving it for the base, and the newest."""

    def __init__(self, key: BookKey, strings: Strings) -> None:
        self.key, self.strings = key, strings
        self.rows = np.zeros(0, _dtype(MIN_ID_BYTES))
        self.first = self.head = self.end = 0  # absolute row numbers; a row lives at number % capacity
        self.objects: dict[int, Fill] = {}  # row number → the fill a row cannot give back exactly
        self.staged: list[Fill] = []

    def __len__(self) -> int:
        """Fills in the log."""
        return self.end - self.head + len(self.staged)

    @property
    def leaving(self) -> int:
        """Fills that left the log and are not yet in the base."""
        return self.head - self.first

    def add(self, fill: Fill) -> None:
        self.staged.append(fill)
        if len(self.staged) >= STAGE:
            self._encode()

    def drop_oldest(self) -> None:
        """The log's oldest fill leaves it (it waits to be booked into the base)."""
        if self.head == self.end:
            self._encode()
        self.head += 1

    def take_leaving(self) -> list[Fill]:
        """The fills that left the log, oldest first; their rows are freed."""
        fills = self._decode(self.first, self.head)
        self.first = self.head
        return fills

    def fills(self) -> list[Fill]:
        """The log, oldest first."""
        return self._decode(self.head, self.end) + self.staged

    def replace(self, fills: list[Fill]) -> None:
        """The log becomes `fills` (after a replay; nothing may be waiting for the base)."""
        assert self.first == self.head
        self.first = self.head = self.end = 0
        self.objects.clear()
        self.staged = list(fills)
        self._encode()

    def find(self, fill_id: str) -> int | None:
        """Position in the log of its first fill with this id, or None."""
        n = self.end - self.head
        found = [n + i for i, f in enumerate(self.staged) if f.fill_id == fill_id]
        data = _id_bytes(fill_id)
        if n and data is not None and len(data) <= self.rows.dtype["fill_id"].itemsize:
            at = self._slots(self.head, self.end)
            hit = (self.rows["fill_id"][at] == data) & (self.rows["flags"][at] & _OBJECT == 0)
            found += np.flatnonzero(hit)[:1].tolist()
        found += [r - self.head for r, f in self.objects.items() if r >= self.head and f.fill_id == fill_id]
        return min(found, default=None)

    # ---- rows ------------------------------------------------------------------------------------
    def _slots(self, start: int, stop: int) -> slice | np.ndarray:
        """Where rows [start, stop) live: a slice unless they wrap around the end."""
        capacity = len(self.rows)
        first = start % capacity if capacity else 0
        if first + stop - start <= capacity:
            return slice(first, first + stop - start)
        return np.arange(start, stop) % capacity

    def _encode(self) -> None:
        """The staged fills into rows, a column at a time (the ring and its id columns grow as needed)."""
        fills, self.staged = self.staged, []
        n = len(fills)
        if not n:
            return
        columns = [list(column) for column in zip(*map(_FIELDS, fills), strict=True)]
        objects = _inexact(columns, self.key)
        for i in objects:  # kept as objects; their row holds placeholders
            self.objects[self.end + i] = fills[i]
            for column, placeholder in zip(columns, _PLACEHOLDER, strict=True):
                column[i] = placeholder
        ts, qty, price, fee, arrival, order_ts, multiplier, symbol, side, venue, action, fill_id, order_id = columns[
            :13
        ]
        fill_ids, order_ids = [x.encode() for x in fill_id], [b"" if x is None else x.encode() for x in order_id]
        self._reserve(self.end + n - self.first, max(map(len, fill_ids + order_ids)))
        flags = np.fromiter(map(_is_not_none, arrival), np.uint8, n) * _ARRIVAL
        flags += np.fromiter(map(_is_not_none, order_ts), np.uint8, n) * _ORDER_TS
        flags += np.fromiter(map(_is_not_none, order_id), np.uint8, n) * _ORDER_ID
        flags[list(objects)] = _OBJECT
        pooled = [self.strings.of(column) for column in (symbol, side, venue, action)]
        arrival = [0.0 if x is None else x for x in arrival]
        order_ts = [0 if x is None else x for x in order_ts]
        # one conversion of row tuples, in the dtype's field order
        rows = zip(
            ts,
            qty,
            price,
            fee,
            arrival,
            order_ts,
            multiplier,
            *pooled,
            flags.tolist(),
            fill_ids,
            order_ids,
            strict=True,
        )
        self.rows[self._slots(self.end, self.end + n)] = np.array(list(rows), self.rows.dtype)
        self.end += n

    def _reserve(self, count: int, width: int) -> None:
        """Room for `count` rows from `first` on and ids of `width` bytes (rows renumbered from 0)."""
        dtype = self.rows.dtype
        if count <= len(self.rows) and width <= dtype["fill_id"].itemsize:
            return
        # up to twice the rows, but a full log plus a fold's worth is the usual need: no more
        capacity = max(count, min(2 * len(self.rows), count + FOLD), 2 * STAGE)
        grown = np.zeros(capacity, _dtype(max(width, dtype["fill_id"].itemsize)))
        used = self.end - self.first
        if used:
            old = self.rows[self._slots(self.first, self.end)]
            for name in dtype.names or ():
                grown[name][:used] = old[name]
        self.objects = {r - self.first: f for r, f in self.objects.items()}
        self.rows, self.head, self.end, self.first = grown, self.head - self.first, used, 0

    def _decode(self, start: int, stop: int) -> list[Fill]:
        """Rows [start, stop) back into fills."""
        n = stop - start
        if not n:
            return []
        rows = self.rows[self._slots(start, stop)]
        flags = rows["flags"].tolist()
        value = self.strings.values.__getitem__
        account, strategy = self.key
        fills = list(
            map(
                Fill,
                rows["ts"].tolist(),
                repeat(account, n),
                repeat(strategy, n),
                map(value, rows["symbol"].tolist()),
                map(value, rows["side"].tolist()),
                rows["qty"].tolist(),
                rows["price"].tolist(),
                [x.decode() for x in rows["fill_id"].tolist()],
                rows["fee"].tolist(),
                [x.decode() if f & _ORDER_ID else None for x, f in zip(rows["order_id"].tolist(), flags, strict=True)],
                map(value, rows["venue"].tolist()),
                [x if f & _ARRIVAL else None for x, f in zip(rows["arrival"].tolist(), flags, strict=True)],
                [x if f & _ORDER_TS else None for x, f in zip(rows["order_ts"].tolist(), flags, strict=True)],
                rows["multiplier"].tolist(),
                map(value, rows["action"].tolist()),
            )
        )
        for i in (i for i, f in enumerate(flags) if f & _OBJECT):
            r = start + i
            fills[i] = self.objects.pop(r) if r < self.head else self.objects[r]
        return fills


class BookLog:
    """The last `window` fills of every book (a `BookRing` each) and, per book, a base engine with the older ones."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.strings = Strings()
        self.rings: dict[BookKey, BookRing] = {}
        self.base: dict[BookKey, Engine] = {}  # fills that left the log, booked into a one-book engine

    def ring(self, key: BookKey) -> BookRing:
        ring = self.rings.get(key)
        if ring is None:
            ring = self.rings[key] = BookRing(key, self.strings)
        return ring

    def add(self, fill: Fill, engine: Engine) -> None:
        ring = self.ring((fill.account, fill.strategy))
        ring.add(fill)
        if len(ring) > self.window:
            ring.drop_oldest()
            if ring.leaving >= FOLD:
                self.base_of(ring.key, engine)

    def find(self, account: str, fill_id: str) -> tuple[BookKey, int] | None:
        """The book whose log holds this fill of the account, and its position there; None if none does."""
        for key, ring in self.rings.items():
            if key[0] == account:
                index = ring.find(fill_id)
                if index is not None:
                    return key, index
        return None

    def base_of(self, key: BookKey, engine: Engine) -> Engine | None:
        """The book's base engine with every fill that left its log booked."""
        ring = self.rings.get(key)
        pending = ring.take_leaving() if ring is not None else []
        if pending:
            base = self.base.get(key)
            if base is None:
                base = self.base[key] = blank(engine)
            base.on_events(pending)
        return self.base.get(key)


def blank(engine: Engine) -> Engine:
    """An empty engine with `engine`'s settings."""
    from collector.engine.engine import Engine

    fresh = Engine(engine.capital_by_account, engine.default_capital, engine.day_basis, revalue=engine.revalue)
    fresh.sample = engine.sample
    return fresh
