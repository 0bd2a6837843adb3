"""Typed JSON decoding (msgspec, the ingest hot path): it takes only records `validate` accepts, with the same Fill.

`FillValidator.decode_json` returning None is not a rejection: the caller then decodes the line
with orjson and `validate` names the reason. So the properties are: never a Fill where `validate`
rejects, never a different Fill, and the common shapes do take the typed path.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.model import NS, Fill, FillValidator, RejectedRecord
from tests.helpers import fill
from tests.test_model import BAD_RECORDS, NOW


def _reference(line: bytes) -> Fill | None:
    """What the careful path makes of the line: its Fill, or None when it is rejected."""
    try:
        return FillValidator().validate(orjson.loads(line), NOW)
    except (orjson.JSONDecodeError, RejectedRecord):
        return None


def _agrees(line: bytes) -> Fill | None:
    typed = FillValidator().decode_json(line, NOW)
    assert typed is None or typed == _reference(line), line
    return typed


@pytest.mark.parametrize(("kind", "record", "reason"), BAD_RECORDS, ids=[k for k, _, _ in BAD_RECORDS])
def test_a_bad_record_never_takes_the_typed_path(kind: str, record: Any, reason: str) -> None:
    assert FillValidator().decode_json(json.dumps(record).encode(), NOW) is None, kind


@pytest.mark.parametrize(
    "record",
    [
        fill(),
        fill(ts=NOW - NS, side="SELL", fee=0.5, multiplier=50, order_id="o-9", venue="CME"),
        fill(arrival_price=5100.0, order_ts=NOW - 2 * NS, ts=NOW, qty=3),
        fill(fee=None, venue=None, action=None, ref_fill_id=None),
        fill(ts="2024-03-01T15:30:00.5+01:00", symbol="EUR/USD", account="a.b:c-d_1"),
    ],
)
def test_common_records_take_the_typed_path_with_the_same_fill(record: dict[str, Any]) -> None:
    line = orjson.dumps(record)
    assert _agrees(line) is not None


@pytest.mark.parametrize(
    "record",
    [
        fill(note="hi"),  # unknown fields are counted by validate
        fill(qty="2"),  # numeric strings
        fill(action="fill"),
        fill(action="cancel", ref_fill_id="f-0"),
        fill(fee=""),
    ],
)
def test_other_valid_shapes_go_the_careful_way(record: dict[str, Any]) -> None:
    line = orjson.dumps(record)
    assert FillValidator().decode_json(line, NOW) is None
    assert isinstance(FillValidator().validate(orjson.loads(line), NOW), Fill)


_ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["", " ", "_all", "buy", "Sell", "1e3", "a\nb", "x\u2028", "é", "ES/H4", "2024-03-01T14:30:00Z"]),
    st.lists(st.integers(), max_size=2),
)
_FIELDS = {
    "ts": st.one_of(st.integers(min_value=NOW - 10**15, max_value=NOW + 10 * NS), _ODD),
    "account": st.one_of(st.sampled_from(["ACC1", "A" * 64, "A" * 65, "_all"]), _ODD),
    "strategy": st.one_of(st.sampled_from(["trend", "s.1:x-y_z"]), _ODD),
    "symbol": st.one_of(st.sampled_from(["ES", "EUR/USD", "_all"]), _ODD),
    "side": st.one_of(st.sampled_from(["buy", "sell", "BUY", "short"]), _ODD),
    "qty": st.one_of(st.floats(min_value=-1, max_value=1e16), st.integers(min_value=-5, max_value=10**16), _ODD),
    "price": st.one_of(st.floats(min_value=-1, max_value=1e16), _ODD),
    "fill_id": st.one_of(st.sampled_from(["f-1", "x" * 128, "x" * 129]), _ODD),
    "fee": st.one_of(st.floats(min_value=-1, max_value=1e16), _ODD),
    "order_id": st.one_of(st.just("o-1"), _ODD),
    "venue": st.one_of(st.just("CME"), _ODD),
    "arrival_price": st.one_of(st.floats(min_value=-1, max_value=1e16), st.just(5e-324), _ODD),
    "order_ts": st.one_of(st.integers(min_value=NOW - 10**12, max_value=NOW + NS), _ODD),
    "multiplier": st.one_of(st.floats(min_value=-1, max_value=1e16), _ODD),
    "action": st.one_of(st.sampled_from(["fill", "cancel", "correct"]), _ODD),
    "ref_fill_id": _ODD,
    "extra": _ODD,
}
_REQUIRED = ("ts", "account", "strategy", "symbol", "side", "qty", "price", "fill_id")


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly valid records with some fields replaced by odd values, dropped, or added."""
    record = fill(ts=NOW - draw(st.integers(min_value=0, max_value=10**12)))
    for key in draw(st.lists(st.sampled_from(sorted(_FIELDS)), max_size=4, unique=True)):
        record[key] = draw(_FIELDS[key])
    for key in draw(st.lists(st.sampled_from(_REQUIRED), max_size=1)):
        record.pop(key, None)
    return record


@settings(max_examples=600, deadline=None)
@given(record=records())
def test_typed_path_agrees_with_validate(record: dict[str, Any]) -> None:
    _agrees(json.dumps(record).encode())


@settings(max_examples=300, deadline=None)
@given(
    record=records(),
    position=st.integers(min_value=0, max_value=400),
    junk=st.binary(min_size=1, max_size=4),
)
def test_typed_path_agrees_on_damaged_lines(record: dict[str, Any], position: int, junk: bytes) -> None:
    line = json.dumps(record).encode()
    at = position % (len(line) + 1)
    _agrees(line[:at] + junk + line[at:])


@settings(max_examples=200, deadline=None)
@given(qty=st.floats(min_value=1e-300, max_value=1e7), price=st.floats(min_value=1e-300, max_value=1e7))
def test_floats_decode_exactly(qty: float, price: float) -> None:
    """msgspec's float parser and orjson's give the same double for any repr (so stored values match)."""
    typed = _agrees(json.dumps(fill(qty=qty, price=price)).encode())
    if typed is not None:
        assert (typed.qty, typed.price) == (qty, price)


def test_duplicate_keys_take_the_last_value_like_orjson() -> None:
    line = json.dumps(fill()).encode()[:-1] + b', "qty": 7}'
    typed = _agrees(line)
    assert typed is not None and typed.qty == 7.0
