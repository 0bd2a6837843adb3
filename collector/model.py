"""Fill and Mark records and their validation (the fill contract: docs/fill-contract.md).

Validation is hand-written rather than a pydantic model: every rejection carries one
specific reason a desk engineer can act on, and the hot path stays cheap (ingest speed).
"""

from __future__ import annotations

import calendar
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

NS = 1_000_000_000
# Epoch-ns values below this (1973-03-03) are almost surely seconds or milliseconds by mistake.
MIN_EPOCH_NS = 100_000_000_000_000_000

REQUIRED_FIELDS = ("ts", "account", "strategy", "symbol", "side", "qty", "price", "fill_id")
OPTIONAL_FIELDS = ("fee", "order_id", "venue", "arrival_price", "order_ts", "multiplier", "action", "ref_fill_id")
ACTIONS = ("fill", "cancel", "correct")  # cancel = a bust of ref_fill_id; correct = replace it with this record
KNOWN_FIELDS = frozenset(REQUIRED_FIELDS + OPTIONAL_FIELDS)
MARK_FIELDS = frozenset(("ts", "symbol", "price"))
RESERVED_NAME = "_all"  # the account/strategy tag of aggregate series
# Prices, quantities × multiplier, notionals and fees above this are rejected: sums and squares of
# such values over any realistic history stay far from float overflow, so every metric stays finite.
MAX_MAGNITUDE = 1e15

_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]+")
_SYMBOL_RE = re.compile(r"[A-Za-z0-9_.:/-]+")
_NAME_BAD_CHAR = re.compile(r"[^A-Za-z0-9_.:-]")
_SYMBOL_BAD_CHAR = re.compile(r"[^A-Za-z0-9_.:/-]")
_CONTROL_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # C0, DEL, C1, line/paragraph separators
_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})?")


class RejectedRecord(ValueError):
    """A record that breaks the contract; the message is the dead-letter reason."""


@dataclass(slots=True)
class Fill:
    """One validated execution. `ts` and `order_ts` are UTC epoch nanoseconds."""

    ts: int
    account: str
    strategy: str
    symbol: str
    side: str
    qty: float
    price: float
    fill_id: str
    fee: float = 0.0
    order_id: str | None = None
    venue: str | None = None
    arrival_price: float | None = None
    order_ts: int | None = None
    multiplier: float = 1.0
    action: str = "fill"
    ref_fill_id: str | None = None  # the fill a cancel/correct applies to

    @property
    def signed_qty(self) -> float:
        return self.qty if self.side == "buy" else -self.qty

    @property
    def notional(self) -> float:
        return self.qty * self.price * self.multiplier

    @property
    def slippage_bps(self) -> float | None:
        """Execution price vs arrival price in basis points, positive = cost to us."""
        if self.arrival_price is None:
            return None
        direction = 1.0 if self.side == "buy" else -1.0
        return direction * (self.price - self.arrival_price) / self.arrival_price * 10_000.0

    @property
    def latency_ms(self) -> float | None:
        if self.order_ts is None:
            return None
        return (self.ts - self.order_ts) / 1e6


@dataclass(slots=True)
class Mark:
    """A mark price for unrealized PnL."""

    ts: int
    symbol: str
    price: float


def _type_name(value: Any) -> str:
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def parse_timestamp(value: Any, key: str) -> int:
    """RFC 3339 with zone (up to ns digits) or integer epoch ns → epoch ns."""
    if isinstance(value, bool) or value is None:
        raise RejectedRecord(f"{key} must be an RFC 3339 string or integer epoch ns, got {_type_name(value)}")
    if isinstance(value, int):
        ns = value
    elif isinstance(value, str):
        text = value.strip()
        if text == "":
            raise RejectedRecord(f"{key} is empty")
        if text.isdigit():
            ns = int(text)
        else:
            return _parse_rfc3339(text, key)
    else:
        raise RejectedRecord(f"{key} must be an RFC 3339 string or integer epoch ns, got {_type_name(value)}")
    if ns < MIN_EPOCH_NS:
        raise RejectedRecord(
            f"{key} {ns} is before 1973: looks like seconds or milliseconds; expected epoch nanoseconds"
        )
    return ns


def _parse_rfc3339(text: str, key: str) -> int:
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise RejectedRecord(f"{key} {text!r} is not an RFC 3339 timestamp (e.g. 2024-05-01T13:30:00.25Z)")
    year, month, day, hour, minute, second, frac, zone = match.groups()
    if zone is None:
        raise RejectedRecord(f"{key} {text!r} has no time zone; add Z or ±HH:MM")
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError as exc:
        raise RejectedRecord(f"{key} {text!r} is not a valid date/time: {exc}") from None
    seconds = calendar.timegm(moment.timetuple())
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        offset_h, offset_m = int(zone[1:3]), int(zone[4:6])
        if offset_h > 23 or offset_m > 59:
            raise RejectedRecord(f"{key} {text!r} has an invalid zone offset {zone}")
        seconds -= sign * (offset_h * 3600 + offset_m * 60)
    fraction_ns = int(frac.ljust(9, "0")) if frac else 0
    ns = seconds * NS + fraction_ns
    if ns < MIN_EPOCH_NS:
        raise RejectedRecord(f"{key} {text!r} is before 1973; check the date")
    return ns


def _name(obj: Mapping[str, Any], key: str, max_len: int, symbol: bool = False) -> str:
    value = obj.get(key)
    if value is None:
        raise RejectedRecord(f"missing field {key!r}")
    if not isinstance(value, str):
        raise RejectedRecord(f"{key} must be a string, got {_type_name(value)}")
    if value == "":
        raise RejectedRecord(f"{key} is empty")
    if len(value) > max_len:
        raise RejectedRecord(f"{key} is {len(value)} characters long; at most {max_len} allowed")
    if not (_SYMBOL_RE if symbol else _NAME_RE).fullmatch(value):
        bad = (_SYMBOL_BAD_CHAR if symbol else _NAME_BAD_CHAR).search(value)
        allowed = "A-Z a-z 0-9 _ . : -" + (" /" if symbol else "")
        char = bad.group() if bad else "?"
        raise RejectedRecord(f"{key} {value!r} has forbidden character {char!r}; allowed: {allowed}")
    if value == RESERVED_NAME and not symbol:
        raise RejectedRecord(f"{key} {RESERVED_NAME!r} is reserved for aggregates; use another name")
    return value


def _magnitude_problem(
    qty: float, price: float, multiplier: float, fee: float, arrival_price: float | None
) -> str | None:
    """Why derived values (notional, exposure, slippage) would overflow or be infinite, or None."""
    if price > MAX_MAGNITUDE:
        return f"price {price!r} is above {MAX_MAGNITUDE:g}"
    if fee > MAX_MAGNITUDE:
        return f"fee {fee!r} is above {MAX_MAGNITUDE:g}"
    if not qty * multiplier <= MAX_MAGNITUDE:
        return f"qty × multiplier = {qty * multiplier!r} is above {MAX_MAGNITUDE:g}"
    if not qty * price * multiplier <= MAX_MAGNITUDE:
        return f"notional qty × price × multiplier = {qty * price * multiplier!r} is above {MAX_MAGNITUDE:g}"
    if arrival_price is not None:
        if arrival_price > MAX_MAGNITUDE:
            return f"arrival_price {arrival_price!r} is above {MAX_MAGNITUDE:g}"
        if not abs(price - arrival_price) / arrival_price * 10_000.0 <= MAX_MAGNITUDE:
            return f"arrival_price {arrival_price!r} is implausibly far from price {price!r} (slippage overflows)"
    return None


def _text(obj: Mapping[str, Any], key: str, max_len: int, required: bool) -> str | None:
    value = obj.get(key)
    if value is None or (value == "" and not required):
        if required:
            raise RejectedRecord(f"missing field {key!r}")
        return None
    if not isinstance(value, str):
        raise RejectedRecord(f"{key} must be a string, got {_type_name(value)}")
    if value == "":
        raise RejectedRecord(f"{key} is empty")
    if len(value) > max_len:
        raise RejectedRecord(f"{key} is {len(value)} characters long; at most {max_len} allowed")
    if _CONTROL_CHAR.search(value):
        raise RejectedRecord(f"{key} contains a control character (newline, tab, ...)")
    return value


def _number(obj: Mapping[str, Any], key: str, required: bool) -> float | None:
    value = obj.get(key)
    if value is None or (value == "" and not required):
        if required:
            raise RejectedRecord(f"missing field {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RejectedRecord(f"{key} must be a number, got {_type_name(value)}")
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            raise RejectedRecord(f"{key} is empty")
        if not _NUMBER_RE.fullmatch(text):
            if text.lower().lstrip("+-") in ("nan", "inf", "infinity"):
                raise RejectedRecord(f"{key} must be a finite number, got {value!r}")
            raise RejectedRecord(f"{key} must be a number, got {value!r}")
        number = float(text)
    else:
        try:
            number = float(value)
        except OverflowError:
            raise RejectedRecord(f"{key} {value} is too large") from None
    if not math.isfinite(number):
        raise RejectedRecord(f"{key} must be a finite number, got {value!r}")
    return number


def _fast_number(value: Any) -> float | None:
    """A finite float from a JSON number, else None (strings, bools, NaN/inf go the careful way)."""
    kind = type(value)
    if kind is float:
        return value if -math.inf < value < math.inf else None
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            return None
    return None


def _positive(obj: Mapping[str, Any], key: str, required: bool) -> float | None:
    number = _number(obj, key, required)
    if number is not None and number <= 0:
        raise RejectedRecord(f"{key} must be > 0, got {number!r}")
    return number


class _WireFill(msgspec.Struct, forbid_unknown_fields=True):
    """A fill record of the common shape, decoded by msgspec in C (types checked there, not in Python).

    Any other shape (unknown or misspelled keys, numeric strings, `null` where a value is required,
    an `action`, broken JSON) fails to decode and takes orjson and `FillValidator.validate`, which
    names the reason: this type only ever accepts a subset of what `validate` accepts.
    """

    ts: int | str
    account: str
    strategy: str
    symbol: str
    side: str
    qty: float
    price: float
    fill_id: str
    fee: float | None = None
    order_id: str | None = None
    venue: str | None = None
    arrival_price: float | None = None
    order_ts: int | None = None
    multiplier: float | None = None
    action: None = None
    ref_fill_id: None = None


_WIRE = msgspec.json.Decoder(_WireFill)
_NAME_CACHE = 65_536  # validated names remembered (each a few dozen bytes); the cache restarts beyond


class FillValidator:
    """Turns one decoded record into a `Fill` or raises `RejectedRecord` with the reason."""

    def __init__(self, max_future_skew_s: float = 5.0) -> None:
        self.max_future_skew_ns = int(max_future_skew_s * NS)
        self.unknown_fields = 0
        # account/strategy names and symbols already found valid, each mapped to one shared str
        self._names: dict[str, str] = {}
        self._symbols: dict[str, str] = {}

    def validate(self, obj: Any, now_ns: int) -> Fill:
        """A valid `Fill`, or `RejectedRecord` with the reason."""
        if type(obj) is dict:
            fill = self._fast(obj, now_ns)
            if fill is not None:
                if not KNOWN_FIELDS.issuperset(obj):
                    self.unknown_fields += sum(1 for k in obj if k not in KNOWN_FIELDS)
                return fill
        return self._explain(obj, now_ns)

    def decode_json(self, line: bytes, now_ns: int) -> Fill | None:
        """One JSON line straight to a `Fill` (msgspec's typed decoding); None: decode it and `validate` it.

        None never means "rejected": the caller takes the careful path, which gives the reason.
        """
        try:
            wire = _WIRE.decode(line)
        except msgspec.DecodeError:
            return None
        return self._checked(
            wire.ts,
            wire.account,
            wire.strategy,
            wire.symbol,
            wire.side,
            wire.qty,
            wire.price,
            wire.fill_id,
            wire.fee,
            wire.order_id,
            wire.venue,
            wire.arrival_price,
            wire.order_ts,
            wire.multiplier,
            now_ns,
        )

    def _fast(self, obj: dict[str, Any], now_ns: int) -> Fill | None:
        """Accept the common well-formed record cheaply; None sends it to `_explain` (never rejects)."""
        get = obj.get
        ts, account, strategy, symbol, side = get("ts"), get("account"), get("strategy"), get("symbol"), get("side")
        qty, price = _fast_number(get("qty")), _fast_number(get("price"))
        fill_id = get("fill_id")
        if not (
            (type(ts) is int or type(ts) is str)
            and type(account) is str
            and type(strategy) is str
            and type(symbol) is str
            and type(side) is str
            and qty is not None
            and price is not None
            and type(fill_id) is str
        ):
            return None
        fee = multiplier = arrival_price = None
        order_id = venue = order_ts = None
        if len(obj) > 8:  # optional fields present: the careful path handles rare shapes
            if get("action") is not None:
                return None
            fee, multiplier, arrival_price = get("fee"), get("multiplier"), get("arrival_price")
            if fee is not None and (fee := _fast_number(fee)) is None:
                return None
            if multiplier is not None and (multiplier := _fast_number(multiplier)) is None:
                return None
            if arrival_price is not None and (arrival_price := _fast_number(arrival_price)) is None:
                return None
            order_id, venue, order_ts = get("order_id"), get("venue"), get("order_ts")
            if not (
                (order_id is None or type(order_id) is str)
                and (venue is None or type(venue) is str)
                and (order_ts is None or type(order_ts) is int)
            ):
                return None
        return self._checked(
            ts,
            account,
            strategy,
            symbol,
            side,
            qty,
            price,
            fill_id,
            fee,
            order_id,
            venue,
            arrival_price,
            order_ts,
            multiplier,
            now_ns,
        )

    def _checked(
        self,
        ts: int | str,
        account: str,
        strategy: str,
        symbol: str,
        side: str,
        qty: float,
        price: float,
        fill_id: str,
        fee: float | None,
        order_id: str | None,
        venue: str | None,
        arrival_price: float | None,
        order_ts: int | None,
        multiplier: float | None,
        now_ns: int,
    ) -> Fill | None:
        """The contract's checks on values of the right JSON types (numbers finite); None → `_explain`."""
        if isinstance(ts, str):
            try:
                ts = parse_timestamp(ts, "ts")
            except RejectedRecord:
                return None
        if ts < MIN_EPOCH_NS or ts > now_ns + self.max_future_skew_ns:
            return None
        names, symbols = self._names, self._symbols
        account_name = names.get(account) or self._remember(names, account, _NAME_RE)
        strategy_name = names.get(strategy) or self._remember(names, strategy, _NAME_RE)
        symbol_name = symbols.get(symbol) or self._remember(symbols, symbol, _SYMBOL_RE)
        if account_name is None or strategy_name is None or symbol_name is None:
            return None
        if side != "buy" and side != "sell":
            side = side.lower()
            if side != "buy" and side != "sell":
                return None
        if not (qty > 0 and price > 0 and 0 < len(fill_id) <= 128) or _CONTROL_CHAR.search(fill_id):
            return None
        if fee is None:
            fee = 0.0
        elif not fee >= 0:
            return None
        if multiplier is None:
            multiplier = 1.0
        elif not multiplier > 0:
            return None
        if arrival_price is not None and not arrival_price > 0:
            return None
        if order_id is not None and (not 0 < len(order_id) <= 128 or _CONTROL_CHAR.search(order_id)):
            return None
        if venue is not None and (not 0 < len(venue) <= 64 or _CONTROL_CHAR.search(venue)):
            return None
        if order_ts is not None and (order_ts < MIN_EPOCH_NS or order_ts > ts):
            return None
        if _magnitude_problem(qty, price, multiplier, fee, arrival_price) is not None:
            return None
        return Fill(
            ts,
            account_name,
            strategy_name,
            symbol_name,
            side,
            qty,
            price,
            fill_id,
            fee,
            order_id,
            venue,
            arrival_price,
            order_ts,
            multiplier,
        )

    @staticmethod
    def _remember(cache: dict[str, str], name: str, pattern: re.Pattern[str]) -> str | None:
        """`name` if it is a valid account/strategy (or, with `_SYMBOL_RE`, symbol), remembered; else None."""
        if not (len(name) <= 64 and pattern.fullmatch(name)) or (pattern is _NAME_RE and name == RESERVED_NAME):
            return None
        if len(cache) >= _NAME_CACHE:
            cache.clear()
        cache[name] = name
        return name

    def _explain(self, obj: Any, now_ns: int) -> Fill:
        """The careful path: accepts what the contract allows, else names the first problem."""
        if not isinstance(obj, Mapping):
            raise RejectedRecord(f"expected a JSON object, got {_type_name(obj)}")
        action = obj.get("action")
        if action is not None and action != "fill":
            if action not in ACTIONS:
                raise RejectedRecord(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
            ref_fill_id = _text(obj, "ref_fill_id", 128, True)
            assert ref_fill_id is not None
            if action == "cancel":
                return self._cancel(obj, ref_fill_id, now_ns)
            fill = self._explain({k: v for k, v in obj.items() if k not in ("action", "ref_fill_id")}, now_ns)
            fill.action, fill.ref_fill_id = "correct", ref_fill_id
            return fill
        ts = parse_timestamp(obj["ts"], "ts") if obj.get("ts") is not None else None
        if ts is None:
            raise RejectedRecord("missing field 'ts'")
        if ts > now_ns + self.max_future_skew_ns:
            ahead = (ts - now_ns) / NS
            raise RejectedRecord(
                f"ts is {ahead:.3f} s in the future; at most {self.max_future_skew_ns / NS:g} s allowed"
            )
        account = _name(obj, "account", 64)
        strategy = _name(obj, "strategy", 64)
        symbol = _name(obj, "symbol", 64, symbol=True)
        side = obj.get("side")
        if side is None:
            raise RejectedRecord("missing field 'side'")
        if not isinstance(side, str) or side.lower() not in ("buy", "sell"):
            raise RejectedRecord(f"side must be 'buy' or 'sell', got {side!r}")
        qty = _positive(obj, "qty", True)
        price = _positive(obj, "price", True)
        fill_id = _text(obj, "fill_id", 128, True)
        fee = _number(obj, "fee", False) or 0.0
        if fee < 0:
            raise RejectedRecord(f"fee must be >= 0, got {fee!r}")
        multiplier = _positive(obj, "multiplier", False) or 1.0
        arrival_price = _positive(obj, "arrival_price", False)
        order_id = _text(obj, "order_id", 128, False)
        venue = _text(obj, "venue", 64, False)
        order_ts = None
        raw_order_ts = obj.get("order_ts")
        if raw_order_ts not in (None, ""):
            order_ts = parse_timestamp(raw_order_ts, "order_ts")
            if order_ts > ts:
                raise RejectedRecord("order_ts is after ts: a fill cannot precede its order")
        assert qty is not None and price is not None and fill_id is not None
        if (problem := _magnitude_problem(qty, price, multiplier, fee, arrival_price)) is not None:
            raise RejectedRecord(problem)
        self.unknown_fields += sum(1 for k in obj if k not in KNOWN_FIELDS)
        return Fill(
            ts=ts,
            account=account,
            strategy=strategy,
            symbol=symbol,
            side=side.lower(),
            qty=qty,
            price=price,
            fill_id=fill_id,
            fee=fee,
            order_id=order_id,
            venue=venue,
            arrival_price=arrival_price,
            order_ts=order_ts,
            multiplier=multiplier,
        )

    def _cancel(self, obj: Mapping[str, Any], ref_fill_id: str, now_ns: int) -> Fill:
        """A bust: which account's fill it cancels and when; the rest comes from the original fill."""
        if obj.get("ts") is None:
            raise RejectedRecord("missing field 'ts'")
        ts = parse_timestamp(obj["ts"], "ts")
        if ts > now_ns + self.max_future_skew_ns:
            raise RejectedRecord(f"ts is {(ts - now_ns) / NS:.3f} s in the future")
        account = _name(obj, "account", 64)
        fill_id = _text(obj, "fill_id", 128, False) or f"cancel:{ref_fill_id}"
        return Fill(ts, account, "", "", "buy", 0.0, 0.0, fill_id, action="cancel", ref_fill_id=ref_fill_id)


def event_json(fill: Fill) -> bytes:
    """The record of a validated event (for a dead letter when it cannot be applied)."""
    fields = {name: getattr(fill, name) for name in Fill.__dataclass_fields__}
    return json.dumps({k: v for k, v in fields.items() if v is not None and v != ""}).encode()


def validate_mark(obj: Any, latest_ns: int | None = None) -> Mark:
    """A mark `{"ts", "symbol", "price"}`; raises `RejectedRecord` like fills do.

    `latest_ns`: the newest acceptable ts (now + the fills' future-skew limit): a mark far in the
    future would move the engine clock and with it every later perf timestamp.
    """
    if not isinstance(obj, Mapping):
        raise RejectedRecord(f"expected a JSON object, got {_type_name(obj)}")
    if obj.get("ts") is None:
        raise RejectedRecord("missing field 'ts'")
    ts = parse_timestamp(obj["ts"], "ts")
    if latest_ns is not None and ts > latest_ns:
        raise RejectedRecord(f"ts is {(ts - latest_ns) / NS:.3f} s beyond the allowed future skew")
    symbol = _name(obj, "symbol", 64, symbol=True)
    price = _positive(obj, "price", True)
    assert price is not None
    if price > MAX_MAGNITUDE:
        raise RejectedRecord(f"price {price!r} is above {MAX_MAGNITUDE:g}")
    return Mark(ts=ts, symbol=symbol, price=price)
