"""Engine, timestamp memory and alert states as plain data and back.

The checkpoint is read at start from a writable directory, so loading it must never execute
code: nothing is pickled. The engine is its columnar arrays (collector/engine/layout.py: raw
float64/int64 numbers) plus the strings their row ids stand for (series keys, symbols);
timestamp memory and alert states are plain JSON data written field by field and read back into
freshly constructed objects. Decoding trusts nothing: a missing key, a wrong type, an array of
the wrong shape or an id out of range raises `ValueError`/`KeyError`/`TypeError`, which the
checkpoint loader turns into a quarantine.

Derived structures are rebuilt rather than stored: books and their chains from the book series'
keys, accounts per series from the books, the string → row dictionaries, capital bases from the
current configuration.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Any

import numpy as np

from collector.alerts import detectors
from collector.alerts.evaluator import WATCHES, Watch
from collector.alerts.rules import AlertRules
from collector.engine import layout as L
from collector.engine.engine import Book, Engine, aligned
from collector.engine.series import ALL, Series
from collector.store.lineproto import UniqueTimestamps

Data = Any  # JSON-able: dict[str, Data] | list[Data] | str | int | float | bool | None

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
_FIELDS = {name: tuple(f.name for f in dataclasses.fields(cls)) for name, cls in _DETECTORS.items()}
_PLAIN = {type(None), bool, int, float, str}  # written as they are
_WATCH_FIXED = ("rule", "key", "op", "threshold")  # rebuilt from the current rule, not restored


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
ARRAYS = ("g", "sf", "si", "hf", "hi", "pf", "pi", "lf", "ln", "yf", "yi")
_WIDTHS = {
    "sf": L.SF_WIDTH,
    "si": L.SI_WIDTH,
    "hf": L.HF_WIDTH,
    "hi": L.HI_WIDTH,
    "pf": L.PF_WIDTH,
    "pi": L.PI_WIDTH,
    "lf": L.LF_WIDTH,
    "yf": L.YF_WIDTH,
    "yi": L.YI_WIDTH,
}
_ROWS = {"sf": "series", "si": "series", "hf": "holdings", "hi": "holdings", "pf": "positions", "pi": "positions"}
_ROWS |= {"yf": "symbols", "yi": "symbols", "lf": "lots", "ln": "lots"}


@dataclasses.dataclass
class EngineState:
    """The engine as data: its arrays (used rows only, copies) and the strings their row ids stand for."""

    arrays: dict[str, np.ndarray]
    keys: list[tuple[str, str, str]]  # series row → (level, account, strategy)
    symbols: list[str]  # symbol row → symbol
    buffers: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # what `arrays` are views of


def engine_state(engine: Engine, reuse: EngineState | None = None) -> EngineState:
    """A copy of the engine's state, cheap enough for the engine thread: array copies, no Python loop per row.

    reuse: an earlier copy no longer needed; its buffers are copied into (no fresh pages to fault in).
    """
    counts = engine.counts
    old = reuse.buffers if reuse is not None else {}
    arrays, buffers = {}, {}
    for name in ARRAYS:
        source = getattr(engine, name)
        if name in _ROWS and _ROWS[name] != "lots":
            source = source[: counts[_ROWS[name]]]
        buffer = old.get(name)
        if buffer is None or len(buffer) < len(source) or buffer.shape[1:] != source.shape[1:]:
            buffer = np.empty((len(source) + len(source) // 4, *source.shape[1:]), source.dtype)
        view = buffer[: len(source)]
        np.copyto(view, source)
        arrays[name], buffers[name] = view, buffer
    return EngineState(arrays, list(engine.keys), list(engine.symbols), buffers)


def reserve(state: EngineState, engine: Engine) -> None:
    """Give `state` buffers that fit the engine's arrays with a quarter to spare, their pages written here
    (np.empty leaves them to the first write: the engine thread's next copy would take those faults).
    Runs off the engine thread (the checkpoint writer): it reads only the engine's sizes."""
    for name in ARRAYS:
        source = getattr(engine, name)
        rows = engine.counts[_ROWS[name]] if name in _ROWS and _ROWS[name] != "lots" else len(source)
        buffer = state.buffers.get(name)
        if buffer is None or len(buffer) < rows or buffer.shape[1:] != source.shape[1:]:
            buffer = np.empty((rows + rows // 4, *source.shape[1:]), source.dtype)
            buffer.fill(0)
            state.buffers[name] = buffer


def engine_meta(state: EngineState) -> Data:
    return {"keys": [list(key) for key in state.keys], "symbols": state.symbols}


def _ids(values: np.ndarray, count: int, what: str, none: bool = True) -> None:
    """Every id in range: the kernel indexes arrays with them unchecked."""
    if values.size and (values.min() < (-1 if none else 0) or values.max() >= count):
        raise ValueError(f"{what} out of range")


def engine_from(
    meta: Data, arrays: dict[str, np.ndarray], capital_by_account: dict[str, float], default_capital: float
) -> Engine:
    """A working engine from `engine_meta` and the arrays; ValueError/TypeError/KeyError when inconsistent."""
    keys = [_key(key) for key in meta["keys"]]
    symbols = [str(symbol) for symbol in meta["symbols"]]
    if len(set(keys)) != len(keys) or len(set(symbols)) != len(symbols):
        raise ValueError("duplicate series or symbols")
    if set(arrays) != set(ARRAYS):
        raise ValueError(f"arrays {sorted(arrays)}, expected {sorted(ARRAYS)}")
    rows = {"series": len(keys), "symbols": len(symbols), "lots": len(arrays["ln"])}
    rows |= {"holdings": len(arrays["hf"]), "positions": len(arrays["pf"])}
    for name, array in arrays.items():
        if name == "g":  # the globals, then the holder heap's (holding, series, q) slots
            if array.ndim != 1 or array.shape[0] < L.G_WIDTH or (array.shape[0] - L.G_WIDTH) % L.HEAP_WIDTH:
                raise ValueError(f"array g has shape {array.shape}, expected ({L.G_WIDTH} + {L.HEAP_WIDTH}k,)")
            continue
        if name == "ln":
            shape: tuple[int, ...] = (rows["lots"],)
        else:
            shape = (rows[_ROWS[name]], _WIDTHS[name])
        if array.shape != shape:
            raise ValueError(f"array {name} has shape {array.shape}, expected {shape}")
    si, hi, pi, yi, g = arrays["si"], arrays["hi"], arrays["pi"], arrays["yi"], arrays["g"]
    _ids(si[:, [L.S_HEAD, L.S_TAIL]], rows["holdings"], "series holdings")
    _ids(si[: g[L.G_NTOUCHED], L.S_TOUCH_LIST], rows["series"], "touched series", none=False)
    _ids(hi[:, [L.H_NEXT, L.H_PREV]], rows["holdings"], "holding links")
    _ids(hi[:, L.H_SERIES], rows["series"], "holding series", none=False)
    _ids(hi[:, L.H_SYMBOL], rows["symbols"], "holding symbols", none=False)
    _ids(pi[:, [L.P_HEAD, L.P_TAIL]], rows["lots"], "position lots")
    _ids(pi[:, L.P_BOOK], rows["series"], "position books", none=False)
    _ids(pi[:, L.P_SYMBOL], rows["symbols"], "position symbols", none=False)
    _ids(pi[:, L.P_H0 : L.P_H0 + 4], rows["holdings"], "position holdings", none=False)
    _ids(arrays["ln"], rows["lots"], "lot links")
    heap = g[L.G_WIDTH :].reshape(-1, L.HEAP_WIDTH)
    _ids(heap[:, 0], rows["holdings"], "holder heap holdings", none=False)
    _ids(heap[:, 1], rows["series"], "holder heap series", none=False)
    _ids(hi[:, L.H_SLOT], len(heap), "holder slots")
    start, count, cap = yi[:, L.Y_START], yi[:, L.Y_COUNT], yi[:, L.Y_CAP]
    holdings = np.bincount(hi[:, L.H_SYMBOL], minlength=rows["symbols"])
    if not (
        (start >= 0).all()
        and (start + cap <= g[L.G_HEAP_END]).all()
        and g[L.G_HEAP_END] <= len(heap)
        and (count >= 0).all()
        and (count <= holdings).all()
        and (holdings == yi[:, L.Y_HOLDINGS]).all()
        and (holdings <= cap).all()
    ):
        raise ValueError("holder heap runs out of range")
    _ids(yi[: g[L.G_NDIRTY], L.Y_DIRTY_LIST], rows["symbols"], "dirty symbols", none=False)
    _ids(g[[L.G_FREE]], rows["lots"], "free lots")
    if not (0 <= g[L.G_NTOUCHED] <= rows["series"] and 0 <= g[L.G_NDIRTY] <= rows["symbols"]):
        raise ValueError("change lists out of range")
    if ("portfolio", ALL, ALL) not in keys:
        raise ValueError("no portfolio series")

    engine = Engine(capital_by_account, default_capital)
    engine.by_index, engine.series = [], {}
    for name in ARRAYS:
        setattr(engine, name, aligned(arrays[name]))  # a copy on cache-line boundaries, as the engine's own
    engine.counts = {table: rows[table] for table in engine.counts}
    for index, (level, account, strategy) in enumerate(keys):
        series = Series(engine, index, level, account, strategy)
        engine.by_index.append(series)
        engine.series[series.key] = series
    engine.keys = keys
    engine.portfolio = engine.series[("portfolio", ALL, ALL)]
    engine.symbols, engine.symbol_ids = symbols, {symbol: y for y, symbol in enumerate(symbols)}
    for series in engine.by_index:
        if series.level == "book":
            chain = (
                series,
                engine.series[("strategy", ALL, series.strategy)],
                engine.series[("account", series.account, ALL)],
                engine.portfolio,
            )
            for member in chain:
                member.accounts.add(series.account)
            engine.books[(series.account, series.strategy)] = Book(chain)
    for p, (book, y) in enumerate(pi[:, [L.P_BOOK, L.P_SYMBOL]].tolist()):
        owner = engine.by_index[book]
        engine.books[(owner.account, owner.strategy)].positions[symbols[y]] = p
        engine.position_ids[(owner.account, owner.strategy, symbols[y])] = p
    for h, (s, y) in enumerate(hi[:, [L.H_SERIES, L.H_SYMBOL]].tolist()):
        engine.holding_ids[(s, y)] = h
    engine.refresh_capital()
    return engine


# ---- timestamp memory --------------------------------------------------------------------------
def stamps_data(stamps: UniqueTimestamps, out: dict[str, np.ndarray] | None = None) -> Data:
    """{keys: [...], owners: [...]}: the 64-bit hashes of the timestamp memory, oldest first (copied into
    `out`'s buffers when they are long enough)."""
    return stamps.export(out)


def stamps_from(data: Data, capacity: int) -> UniqueTimestamps:
    arrays = (list, np.ndarray)
    if not isinstance(data, dict) or not all(isinstance(data.get(name), arrays) for name in ("keys", "owners")):
        raise ValueError("timestamp memory: expected {keys: [...], owners: [...]}")
    if any(isinstance(data[name], np.ndarray) and data[name].dtype != np.int64 for name in ("keys", "owners")):
        raise ValueError("timestamp memory: expected 64-bit integer arrays")
    return UniqueTimestamps.restore(data, capacity)


# ---- alert states ------------------------------------------------------------------------------
def _value_data(value: Any) -> Data:
    """A watch attribute: numbers/strings/None as they are, containers and known detectors tagged."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, deque | tuple | list):
        items = list(value)
        if not set(map(type, items)) <= _PLAIN:  # the common case (a window of floats) without a call per item
            items = [_value_data(v) for v in items]
        return items if isinstance(value, list) else {"deque" if isinstance(value, deque) else "tuple": items}
    name = type(value).__name__
    if _DETECTORS.get(name) is type(value):
        return {"detector": name, "fields": {f: _value_data(getattr(value, f)) for f in _FIELDS[name]}}
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
    """Each watch with the rule it was built from (an edited rule starts afresh on restore).

    Runs in the engine thread at every checkpoint (tens of thousands of watches at 30k series): each rule
    is dumped once, not once per watch."""
    rules: dict[int, Data] = {}
    return [
        {
            "rule": rules.get(id(watch.rule)) or rules.setdefault(id(watch.rule), watch.rule.model_dump(mode="json")),
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
