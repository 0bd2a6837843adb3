"""The compiled engine == the pure-Python reference engine, bit for bit, on random streams.

Every series field (and the perf row built from it), every holding, the daily-change state,
realized PnL per fill and every round trip must be equal (==, NaN equal to NaN): the kernel does
the same floating-point operations in the same order.
"""

from __future__ import annotations

import math
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.engine.daily import DayBasis
from collector.engine.engine import Engine
from collector.model import NS, Fill, Mark
from tests.engine import reference_engine
from tests.engine.test_engine_property import streams

T0 = 1_700_000_000 * NS
FIELDS = (
    "realized", "fees", "unrealized", "peak", "max_dd", "max_dd_pct", "trades", "wins", "losses", "loss_streak",
    "fills", "volume", "net_sum", "gross_wins", "gross_losses", "slip_weighted", "slip_notional", "equity",
)  # fmt: skip


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def random_stream(rng: random.Random, count: int, books: int = 3, symbols: int = 4) -> list[Fill | Mark]:
    """Fills with fractional, crossing and dust quantities, multipliers, fees, slippage; marks in between."""
    events: list[Fill | Mark] = []
    ts = T0 + rng.randrange(7) * 86_400 * NS
    prices = [rng.uniform(5, 500) for _ in range(symbols)]
    for i in range(count):
        ts += rng.choice([0, 1, 1_000, 3_600 * NS, 86_400 * NS, 3 * 86_400 * NS, rng.randrange(10**12)])
        s = rng.randrange(symbols)
        prices[s] *= 1 + rng.gauss(0, 0.01)
        price = round(prices[s], rng.choice([2, 6]))
        if rng.random() < 0.1:
            events.append(Mark(ts, f"S{s}", rng.choice([price, price * 1.01, prices[s]])))
            continue
        qty = rng.choice([0.1, 0.2, 0.3, 1.0, 3.0, 7.0, 1e-9, 100000.3, round(rng.uniform(0.01, 50), 3)])
        arrival = rng.choice([None, price * (1 + rng.gauss(0, 0.001))])
        events.append(
            Fill(
                ts=ts,
                account=f"A{rng.randrange(books)}",
                strategy=f"s{rng.randrange(books)}",
                symbol=f"S{s}",
                side=rng.choice(["buy", "sell"]),
                qty=qty,
                price=price,
                fill_id=str(i),
                fee=rng.choice([0.0, 0.5, round(rng.uniform(0, 3), 4)]),
                arrival_price=arrival,
                multiplier=rng.choice([1.0, 1.0, 50.0, 0.1]),
            )
        )
    return events


def assert_same_engines(new: Engine, ref: reference_engine.Engine) -> None:
    assert new.clock_ns == ref.clock_ns
    assert set(new.series) == set(ref.series)
    for key, series in new.series.items():
        old = ref.series[key]
        for name in FIELDS:
            assert _same(getattr(series, name), getattr(old, name)), (
                key,
                name,
                getattr(series, name),
                getattr(old, name),
            )
        assert series.accounts == old.accounts
        daily, old_daily = series.daily, old.daily
        assert (daily.day, daily.prev_close, daily.last) == (old_daily.day, old_daily.prev_close, old_daily.last)
        assert (daily.closed is None) == (old_daily.closed is None)
        if daily.closed is not None and old_daily.closed is not None:
            got, want = daily.closed, old_daily.closed
            assert (got.n, got.mean, got.m2, got.down_sq) == (want.n, want.mean, want.m2, want.down_sq), key
        holdings = {s: (h.q, h.c, h.v, h.books) for s, h in series.holdings.items()}
        assert list(holdings.items()) == [(s, (h.q, h.c, h.v, h.books)) for s, h in old.holdings.items()], key
    rows, old_rows = new.rows(), ref.rows()
    assert rows.keys() == old_rows.keys()
    for level in rows:
        for got_row, want_row in zip(rows[level], old_rows[level], strict=True):
            assert got_row.keys() == want_row.keys()
            for name in got_row:
                assert _same(got_row[name], want_row[name]), (level, name, got_row[name], want_row[name])
    assert new.marks == ref.marks
    held = {(s.key, sym) for s in new.series.values() for sym, h in s.holdings.items() if h.q}
    assert held == {(s.key, sym) for sym, holders in ref.holders.items() for s in holders}


def feed(events: list[Fill | Mark], basis: DayBasis, rng: random.Random, capital: dict[str, float]) -> None:
    """The reference one event at a time, the engine in random batches; compare results and state."""
    new, ref = Engine(capital, 1e6, basis), reference_engine.Engine(capital, 1e6, basis)
    i = 0
    while i < len(events):
        chunk = events[i : i + rng.choice([1, 2, 7, 50, 400])]
        i += len(chunk)
        result = new.on_events(chunk)
        for j, event in enumerate(chunk):
            if isinstance(event, Mark):
                ref.on_mark(event)
                assert result.realized[j] == 0.0
                continue
            want = ref.on_fill(event)
            assert _same(result.realized[j], want.realized_pnl)
            assert result.trips.get(j) == want.round_trip, (j, result.trips.get(j), want.round_trip)
        if rng.random() < 0.3:
            assert {s.key for s in new.take_changed()} == {s.key for s in ref.take_changed()}
    assert_same_engines(new, ref)


@settings(max_examples=80, deadline=None)
@given(streams(), st.sampled_from(["trading", "calendar"]), st.integers(0, 2**32))
def test_kernel_equals_reference_on_hypothesis_streams(events: list[Fill | Mark], basis: DayBasis, seed: int) -> None:
    feed(events, basis, random.Random(seed), {"A": 0.0} if seed % 5 == 0 else {})


def test_kernel_equals_reference_on_long_random_streams() -> None:
    for seed in range(8):
        rng = random.Random(seed)
        events = random_stream(rng, rng.choice([300, 3000]), books=rng.choice([1, 3, 6]), symbols=rng.choice([1, 4, 9]))
        feed(events, "trading" if seed % 2 else "calendar", rng, {"A1": 2.5e6, "A2": 0.0})
