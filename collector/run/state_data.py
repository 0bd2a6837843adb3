"""Engine, timestamp memory and alert states as plain data (dicts, lists, numbers, strings) and back.

The checkpoint is read at start from a writable directory, so loading it must never execute
code: instead of pickling objects, each piece of state is written out field by field and read
back into freshly constructed objects. Decoding trusts nothing: a missing key, a wrong type or
a value of the wrong shape raises `ValueError`/`KeyError`/`TypeError`, which the checkpoint
loader turns into a quarantine.

Derived structures are rebuilt rather than stored: a book's series chain from its key, and the
symbol → holders index from every series' holdings (a holding is indexed iff its quantity ≠ 0,
the invariant `Engine.on_fill` keeps).
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict, deque
from typing import Any

from collector.alerts import detectors
from collector.alerts.evaluator import WATCHES, Watch
from collector.alerts.rules import AlertRules
from collector.engine.daily import DailyChanges, Moments
from collector.engine.engine import Engine, _Book
from collector.engine.positions import Position, _Cycle
from collector.engine.series import ALL, Holding, Series
from collector.store.lineproto import UniqueTimestamps

Data = Any  # JSON-able: dict[str, Data] | list[Data] | str | int | float | bool | None

_SERIES_STRUCTURED = ("level", "account", "strategy", "accounts", "holdings", "daily")
_SERIES_SCALARS = tuple(name for name in Series.__slots__ if name not in _SERIES_STRUCTURED)
_CYCLE_FIELDS = tuple(f.name for f in dataclasses.fields(_Cycle))
_DETECTORS: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        detectors.SlippageHistory,
        detectors.Cusum,
        detectors.PageHinkley,
        detectors.DailyReturns,
        detectors.TradeWindow,
    )
}
_WATCH_FIXED = ("rule", "key", "op", "threshold")  # rebuilt from the current rule, not restored


def _number(value: Data) -> float:
    if value is None:  # how orjson writes NaN and ±inf
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _int(value: Data) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _key(value: Data) -> tuple[str, str, str]:
    level, account, strategy = value
    if not all(isinstance(part, str) for part in (level, account, strategy)):
        raise TypeError(f"expected a series key of three strings, got {value!r}")
    return (level, account, strategy)


# ---- engine ------------------------------------------------------------------------------------
def _moments_data(moments: Moments | None) -> Data:
    return None if moments is None else [moments.n, moments.mean, moments.m2, moments.down_sq]


def _scalars_data(obj: object, names: tuple[str, ...]) -> Data:
    return {name: getattr(obj, name) for name in names}


def _scalars_from(obj: object, names: tuple[str, ...], data: Data) -> None:
    """Set each named number on a fresh `obj`, with the type its constructor gave it (int or float)."""
    if set(data) != set(names):
        raise ValueError(f"{type(obj).__name__} fields {sorted(data)}, expected {sorted(names)}")
    for name in names:
        default = getattr(obj, name)
        setattr(obj, name, _int(data[name]) if isinstance(default, int) else _number(data[name]))


def _series_data(series: Series) -> Data:
    daily = series.daily
    return {
        "key": list(series.key),
        "accounts": sorted(series.accounts),
        "holdings": {symbol: _scalars_data(h, Holding.__slots__) for symbol, h in series.holdings.items()},
        "scalars": _scalars_data(series, _SERIES_SCALARS),
        "daily": [daily.day, daily.prev_close, daily.last, _moments_data(daily.closed)],
    }


def _series_from(data: Data) -> Series:
    series = Series(*_key(data["key"]))
    series.accounts = {str(a) for a in data["accounts"]}
    for symbol, fields in data["holdings"].items():
        holding = series.holdings[str(symbol)] = Holding()
        _scalars_from(holding, Holding.__slots__, fields)
    _scalars_from(series, _SERIES_SCALARS, data["scalars"])
    day, prev_close, last, closed = data["daily"]
    moments = None if closed is None else Moments(_int(closed[0]), *(_number(x) for x in closed[1:4]))
    series.daily = DailyChanges(_int(day), _number(prev_close), _number(last), moments)
    return series


def _position_data(position: Position) -> Data:
    cycle = position._cycle
    return {
        "lots": [list(lot) for lot in position.lots],
        "direction": position.direction,
        "q": position.q,
        "c": position.c,
        "cycle": None if cycle is None else [getattr(cycle, name) for name in _CYCLE_FIELDS],
    }


def _position_from(data: Data) -> Position:
    position = Position()
    position.lots = deque([_number(x) for x in lot] for lot in data["lots"])
    if len({len(lot) for lot in position.lots}) > 1:
        raise ValueError("lots of different shapes")
    position.direction = _int(data["direction"])
    if position.direction not in (-1, 0, 1):
        raise ValueError(f"position direction {position.direction}")
    position.q, position.c = _number(data["q"]), _number(data["c"])
    cycle = data["cycle"]
    if cycle is not None:
        direction, entry_ts, *rest = cycle
        position._cycle = _Cycle(_int(direction), _int(entry_ts), *(_number(x) for x in rest))
    return position


def engine_data(engine: Engine) -> Data:
    return {
        "clock_ns": engine.clock_ns,
        "series": [_series_data(series) for series in engine.series.values()],
        "books": [
            {"account": a, "strategy": s, "positions": {sym: _position_data(p) for sym, p in book.positions.items()}}
            for (a, s), book in engine.books.items()
        ],
        "marks": engine.marks,
        "streamed_marks": sorted(engine.streamed_marks),
        "touched": [list(series.key) for series in engine.touched],
        "dirty_symbols": sorted(engine.dirty_symbols),
    }


def engine_from(data: Data, capital_by_account: dict[str, float], default_capital: float) -> Engine:
    engine = Engine(capital_by_account, default_capital)
    engine.clock_ns = _int(data["clock_ns"])
    engine.series = {}
    for record in data["series"]:
        series = _series_from(record)
        engine.series[series.key] = series
    portfolio = engine.series.get(("portfolio", ALL, ALL))
    if portfolio is None:
        raise ValueError("no portfolio series")
    engine.portfolio = portfolio
    for record in data["books"]:
        account, strategy = str(record["account"]), str(record["strategy"])
        chain = (
            engine.series[("book", account, strategy)],
            engine.series[("strategy", ALL, strategy)],
            engine.series[("account", account, ALL)],
            portfolio,
        )
        positions = {str(sym): _position_from(p) for sym, p in record["positions"].items()}
        engine.books[(account, strategy)] = _Book(chain, positions)
    engine.marks = {str(symbol): _number(price) for symbol, price in data["marks"].items()}
    engine.streamed_marks = {str(symbol) for symbol in data["streamed_marks"]}
    engine.holders = {symbol: {} for symbol in engine.marks}
    for series in engine.series.values():
        for symbol, holding in series.holdings.items():
            if holding.q:
                engine.holders.setdefault(symbol, {})[series] = holding
    engine.touched = {engine.series[_key(key)] for key in data["touched"]}
    engine.dirty_symbols = {str(symbol) for symbol in data["dirty_symbols"] if symbol in engine.holders}
    return engine


# ---- timestamp memory --------------------------------------------------------------------------
def stamps_data(stamps: UniqueTimestamps) -> Data:
    """[[(series, ts), ...], [fill_id, ...]], oldest first: tuples serialize as arrays without a Python loop."""
    return [list(stamps._taken), list(stamps._taken.values())]


def stamps_from(data: Data, capacity: int) -> UniqueTimestamps:
    stamps = UniqueTimestamps(capacity)
    keys, fill_ids = data
    if len(keys) != len(fill_ids):
        raise ValueError("timestamp memory: keys and fill ids differ in length")
    taken: OrderedDict[tuple[str, int], str] = OrderedDict()
    for (series, ts), fill_id in zip(keys[-capacity:], fill_ids[-capacity:], strict=True):
        taken[(str(series), _int(ts))] = str(fill_id)
    stamps._taken = taken
    return stamps


# ---- alert states ------------------------------------------------------------------------------
def _value_data(value: Any) -> Data:
    """A watch attribute: numbers/strings/None as they are, containers and known detectors tagged."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, deque):
        return {"deque": [_value_data(v) for v in value]}
    if isinstance(value, tuple):
        return {"tuple": [_value_data(v) for v in value]}
    if isinstance(value, list):
        return [_value_data(v) for v in value]
    name = type(value).__name__
    if _DETECTORS.get(name) is type(value):
        fields = {f.name: _value_data(getattr(value, f.name)) for f in dataclasses.fields(_DETECTORS[name])}
        return {"detector": name, "fields": fields}
    raise TypeError(f"cannot checkpoint a {name}")


def _value_from(data: Data) -> Any:
    if data is None or isinstance(data, bool | int | float | str):
        return data
    if isinstance(data, list):
        return [_value_from(v) for v in data]
    if isinstance(data, dict):
        if set(data) == {"deque"}:
            return deque(_value_from(v) for v in data["deque"])
        if set(data) == {"tuple"}:
            return tuple(_value_from(v) for v in data["tuple"])
        if set(data) == {"detector", "fields"}:
            cls = _DETECTORS[data["detector"]]  # only these classes, with data fields: no code runs
            names = {f.name for f in dataclasses.fields(cls)}
            if set(data["fields"]) != names:
                raise ValueError(f"{data['detector']} fields {sorted(data['fields'])}")
            return cls(**{k: _value_from(v) for k, v in data["fields"].items()})
    raise ValueError(f"unexpected alert state value {data!r}")


def alerts_data(state: dict[tuple[str, tuple[str, str, str]], Watch]) -> Data:
    """Each watch with the rule it was built from (an edited rule starts afresh on restore)."""
    return [
        {
            "rule": watch.rule.model_dump(mode="json"),
            "key": list(key),
            "state": {k: _value_data(v) for k, v in vars(watch).items() if k not in _WATCH_FIXED},
        }
        for (_, key), watch in state.items()
    ]


def alerts_from(data: Data, rules: AlertRules) -> dict[tuple[str, tuple[str, str, str]], Watch]:
    """Watches of the saved states whose rule is still configured unchanged."""
    current = {rule.name: rule for rule in rules.rules}
    out: dict[tuple[str, tuple[str, str, str]], Watch] = {}
    for record in data:
        saved_rule = record["rule"]
        rule = current.get(str(saved_rule.get("name"))) if isinstance(saved_rule, dict) else None
        if rule is None or rule.model_dump(mode="json") != saved_rule:
            continue
        key = _key(record["key"])
        watch = WATCHES[rule.kind](rule, key)
        fresh = vars(watch)
        for name, value in record["state"].items():
            if name not in fresh or name in _WATCH_FIXED:
                raise ValueError(f"unknown alert state field {name!r}")
            setattr(watch, name, _value_from(value))
        out[(rule.name, key)] = watch
    return out
