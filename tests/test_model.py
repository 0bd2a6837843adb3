"""The fill contract: what is accepted, and a specific reason for each kind of bad record."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.model import NS, FillValidator, RejectedRecord, parse_timestamp, validate_mark
from tests.helpers import fill

NOW = 1_709_303_400 * NS  # 2024-03-01T14:30:00Z

# (kind, record, words the reason must contain). Records are decoded JSON; raw-line kinds
# (invalid JSON, bad UTF-8, CSV column count) are covered in test_records.py and the ingest tests.
BAD_RECORDS: list[tuple[str, Any, str]] = [
    ("not an object", [1, 2], "expected a JSON object, got array"),
    ("missing ts", {k: v for k, v in fill().items() if k != "ts"}, "missing field 'ts'"),
    ("missing account", {k: v for k, v in fill().items() if k != "account"}, "missing field 'account'"),
    ("missing qty", {k: v for k, v in fill().items() if k != "qty"}, "missing field 'qty'"),
    ("missing fill_id", {k: v for k, v in fill().items() if k != "fill_id"}, "missing field 'fill_id'"),
    ("null side", fill(side=None), "missing field 'side'"),
    ("empty account", fill(account=""), "account is empty"),
    ("empty qty string", fill(qty=""), "qty is empty"),
    ("account not a string", fill(account=17), "account must be a string, got integer"),
    ("qty wrong type", fill(qty=[1]), "qty must be a number, got array"),
    ("qty boolean", fill(qty=True), "qty must be a number, got boolean"),
    ("qty text", fill(qty="ten"), "qty must be a number, got 'ten'"),
    ("qty NaN", fill(qty=math.nan), "qty must be a finite number"),
    ("price infinite", fill(price="inf"), "price must be a finite number"),
    ("qty zero", fill(qty=0), "qty must be > 0"),
    ("qty negative", fill(qty=-5), "qty must be > 0"),
    ("price zero", fill(price=0.0), "price must be > 0"),
    ("fee negative", fill(fee=-0.01), "fee must be >= 0"),
    ("bad side", fill(side="short"), "side must be 'buy' or 'sell'"),
    ("unparseable ts", fill(ts="yesterday"), "is not an RFC 3339 timestamp"),
    ("ts without zone", fill(ts="2024-03-01T14:30:00"), "has no time zone"),
    ("impossible date", fill(ts="2024-02-30T10:00:00Z"), "is not a valid date/time"),
    ("ts float", fill(ts=1.7e18), "must be an RFC 3339 string or integer epoch ns, got number"),
    ("ts in seconds", fill(ts=1_709_303_400), "looks like seconds or milliseconds"),
    ("ts too far in future", fill(ts="2024-03-01T14:31:00Z"), "s in the future; at most 5 s allowed"),
    ("account forbidden char", fill(account="ACC 1"), "forbidden character ' '"),
    ("strategy forbidden char", fill(strategy="trend/es"), "forbidden character '/'"),
    ("symbol forbidden char", fill(symbol="ES,NQ"), "forbidden character ','"),
    ("account too long", fill(account="A" * 65), "at most 64 allowed"),
    ("fill_id too long", fill(fill_id="x" * 129), "at most 128 allowed"),
    ("fill_id control char", fill(fill_id="a\nb"), "control character"),
    ("fill_id number", fill(fill_id=12345), "fill_id must be a string, got integer"),
    ("multiplier zero", fill(multiplier=0), "multiplier must be > 0"),
    ("arrival_price negative", fill(arrival_price=-1), "arrival_price must be > 0"),
    ("order_ts after ts", fill(order_ts="2024-03-01T14:30:01Z"), "order_ts is after ts"),
    ("order_ts bad", fill(order_ts="soon"), "order_ts 'soon' is not an RFC 3339 timestamp"),
    ("bad zone offset", fill(ts="2024-03-01T14:30:00+25:00"), "invalid zone offset"),
    ("notional overflow", fill(qty=1e200, price=1e200), "is above 1e+15"),
]


def test_at_least_twenty_distinct_kinds() -> None:
    reasons = {reason for _, _, reason in BAD_RECORDS}
    assert len(reasons) >= 20


@pytest.mark.parametrize(("kind", "record", "reason"), BAD_RECORDS, ids=[k for k, _, _ in BAD_RECORDS])
def test_bad_record_is_rejected_with_its_reason(kind: str, record: Any, reason: str) -> None:
    with pytest.raises(RejectedRecord) as info:
        FillValidator().validate(record, NOW)
    assert reason in str(info.value), f"{kind}: {info.value}"


def test_valid_fill_fields() -> None:
    got = FillValidator().validate(
        fill(side="SELL", fee="0.5", order_id="o-9", venue="CME", arrival_price=5100.0, multiplier=50), NOW
    )
    assert got.side == "sell"
    assert got.ts == NOW + 123_456_000
    assert got.fee == 0.5
    assert got.notional == 2.0 * 5100.25 * 50
    # selling 0.25 above arrival is an improvement, so the cost is negative: -(0.25 / 5100) * 1e4
    assert got.slippage_bps == pytest.approx(-0.25 / 5100.0 * 1e4)
    bought = FillValidator().validate(fill(arrival_price=5100.0), NOW)
    assert bought.slippage_bps == pytest.approx(0.25 / 5100.0 * 1e4)  # paying up is a cost
    assert got.order_id == "o-9" and got.venue == "CME"


def test_latency_from_order_ts() -> None:
    got = FillValidator().validate(fill(order_ts="2024-03-01T14:29:59.873456Z"), NOW)
    assert got.latency_ms == pytest.approx(250.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01T14:30:00Z", NOW),
        ("2024-03-01T14:30:00.000000001Z", NOW + 1),
        ("2024-03-01T16:30:00.5+02:00", NOW + NS // 2),
        ("2024-03-01T09:00:00-05:30", NOW),
        ("2024-03-01 14:30:00z", NOW),
        (str(NOW), NOW),
        (NOW, NOW),
    ],
)
def test_timestamps(text: Any, expected: int) -> None:
    assert parse_timestamp(text, "ts") == expected


def test_unknown_fields_are_counted_not_rejected() -> None:
    validator = FillValidator()
    validator.validate(fill(note="hello", tag2=1), NOW)
    assert validator.unknown_fields == 2


def test_csv_strings_are_accepted() -> None:
    record = {k: str(v) for k, v in fill().items()} | {"fee": "", "order_ts": "", "multiplier": ""}
    got = FillValidator().validate(record, NOW)
    assert got.qty == 2.0 and got.fee == 0.0 and got.multiplier == 1.0 and got.order_ts is None


def test_mark_validation() -> None:
    assert validate_mark({"ts": NOW, "symbol": "ES", "price": 5000}).price == 5000.0
    with pytest.raises(RejectedRecord, match="price must be > 0"):
        validate_mark({"ts": NOW, "symbol": "ES", "price": -1})


names = st.text(alphabet="ABCxyz019_.:-", min_size=1, max_size=64)
numbers = st.one_of(
    st.floats(min_value=1e-9, max_value=1e7, allow_nan=False), st.integers(min_value=1, max_value=10**7)
)  # qty × price stays under MAX_MAGNITUDE (1e15)


@settings(max_examples=300, deadline=None)
@given(
    account=names,
    symbol=st.text(alphabet="ABC/:-.", min_size=1, max_size=64),
    qty=numbers,
    price=numbers,
    fee=st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)),
    side=st.sampled_from(["buy", "sell", "Buy", "SELL"]),
    ts=st.integers(min_value=NOW - 10**15, max_value=NOW),
    extra=st.booleans(),
)
def test_fast_path_agrees_with_careful_path(account, symbol, qty, price, fee, side, ts, extra) -> None:
    """The cheap path used for ingest speed must give the same Fill as the careful one."""
    record = fill(account=account, symbol=symbol, qty=qty, price=price, side=side, ts=ts)
    if fee is not None:
        record["fee"] = fee
    if extra:
        record |= {"order_id": "o-1", "arrival_price": price, "order_ts": ts - 1000, "unknown": 1}
    validator = FillValidator()
    assert validator._fast(record, NOW) == validator._explain(record, NOW)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"arrival_price": 5e-324}, "slippage overflows"),
        ({"multiplier": 1e308}, "qty × multiplier"),
        ({"price": 1e300}, r"price 1e\+300 is above"),
        ({"fee": 1e300}, r"fee 1e\+300 is above"),
        ({"qty": 1e10, "price": 1e10}, "notional"),
        ({"account": "_all"}, "reserved for aggregates"),
        ({"strategy": "_all"}, "reserved for aggregates"),
        ({"fill_id": "f\u2028x"}, "control character"),
        ({"fill_id": "f\x85x"}, "control character"),
        ({"order_id": "o\u2029"}, "control character"),
        ({"venue": "v\x9b"}, "control character"),
    ],
)
def test_values_whose_derived_metrics_would_overflow_are_rejected(overrides: dict[str, object], reason: str) -> None:
    with pytest.raises(RejectedRecord, match=reason):
        FillValidator().validate(fill(ts=NOW, **overrides), NOW)


def test_accepted_extremes_keep_every_metric_finite() -> None:
    """Fills at the limits, many of them: equity and every perf value stay finite."""
    from collector.engine.engine import Engine

    engine = Engine()
    validator = FillValidator()
    for i in range(200):
        side = "buy" if i % 2 == 0 else "sell"
        record = fill(
            ts=NOW + i,
            fill_id=f"x{i}",
            side=side,
            qty=1e7,
            price=1e8 if i % 4 < 2 else 1e-8,
            multiplier=1.0,
            fee=1e14,
            arrival_price=1e-3,
        )
        engine.on_fill(validator.validate(record, NOW + i))
    for rows in engine.rows().values():
        for row in rows:
            assert all(math.isfinite(v) for v in row.values() if isinstance(v, float)), row


def test_marks_get_the_future_skew_limit() -> None:
    with pytest.raises(RejectedRecord, match="future skew"):
        validate_mark({"ts": NOW + 30 * 86_400 * NS, "symbol": "ES", "price": 1.0}, NOW + 5 * NS)
    assert validate_mark({"ts": NOW + NS, "symbol": "ES", "price": 1.0}, NOW + 5 * NS).price == 1.0
    with pytest.raises(RejectedRecord, match="above"):
        validate_mark({"ts": NOW, "symbol": "ES", "price": 1e300})
