"""Incremental engine == a direct batch computation written independently here (pandas/numpy).

The batch side rebuilds FIFO lots its own way (signed lot lists), revalues every series after
every event from scratch, and derives drawdowns and daily Sharpe/Sortino with pandas.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.engine.daily import DayBasis
from collector.engine.engine import Engine
from collector.engine.metrics import MinSample
from collector.model import NS, Fill, Mark

DAY = 86_400 * NS
T0 = 1_700_000_000 * NS


def _series_keys(account: str, strategy: str) -> list[tuple[str, str, str]]:
    return [
        ("book", account, strategy),
        ("strategy", "_all", strategy),
        ("account", account, "_all"),
        ("portfolio", "_all", "_all"),
    ]


def _period_labels(times: pd.DatetimeIndex, basis: str) -> pd.DatetimeIndex:
    """UTC day of each time; on the trading basis a Saturday or Sunday belongs to the next Monday."""
    days = times.floor("D")
    if basis == "calendar":
        return days
    weekday = days.day_of_week.to_numpy()
    return days + pd.to_timedelta(np.where(weekday >= 5, 7 - weekday, 0), unit="D")


def batch(events: list[Fill | Mark], basis: str = "trading") -> dict[tuple[str, str, str], dict[str, Any]]:
    lots: dict[tuple[str, str, str], list[list[float]]] = defaultdict(list)  # signed qty, price, mult
    cycles: dict[tuple[str, str, str], dict[str, float]] = {}
    marks: dict[str, float] = {}
    streamed: set[str] = set()
    realized: dict[Any, float] = defaultdict(float)
    fees: dict[Any, float] = defaultdict(float)
    trips: dict[Any, list[float]] = defaultdict(list)
    fills: dict[Any, int] = defaultdict(int)
    volume: dict[Any, float] = defaultdict(float)
    slip: dict[Any, list[tuple[float, float]]] = defaultdict(list)
    path: dict[Any, list[tuple[int, float]]] = defaultdict(list)
    started: set[Any] = set()

    def holdings(key: tuple[str, str, str]) -> tuple[dict[str, float], float]:
        level, account, strategy = key
        qty: dict[str, float] = defaultdict(float)
        cost = 0.0
        for (a, s, sym), book_lots in lots.items():
            if (level == "book" and (a, s) != (account, strategy)) or (level == "strategy" and s != strategy):
                continue
            if level == "account" and a != account:
                continue
            for q, p, m in book_lots:
                qty[sym] += q * m
                cost += q * p * m
        return qty, cost

    def equity(key: tuple[str, str, str]) -> float:
        qty, cost = holdings(key)
        unrealized = sum(marks[sym] * q for sym, q in qty.items()) - cost
        return realized[key] - fees[key] + unrealized

    for event in events:
        if isinstance(event, Mark):
            marks[event.symbol] = event.price
            streamed.add(event.symbol)
        else:
            f = event
            book = (f.account, f.strategy, f.symbol)
            signed = f.qty if f.side == "buy" else -f.qty
            pnl, closed = 0.0, 0.0
            book_lots = lots[book]
            while book_lots and signed and (book_lots[0][0] > 0) != (signed > 0):
                lot = book_lots[0]
                take = min(abs(signed), abs(lot[0]))
                direction = 1 if lot[0] > 0 else -1
                pnl += (f.price - lot[1]) * take * lot[2] * direction
                closed += take
                lot[0] -= direction * take
                signed += direction * take
                if abs(lot[0]) < 1e-9:
                    book_lots.pop(0)
            opened = abs(signed) if abs(signed) > 1e-9 else 0.0
            cycle = cycles.setdefault(book, {"gross": 0.0, "fees": 0.0})
            if closed:
                cycle["gross"] += pnl
                cycle["fees"] += f.fee * closed / f.qty
                if not book_lots:
                    for key in _series_keys(f.account, f.strategy):
                        trips[key].append(cycle["gross"] - cycle["fees"])
                    cycle = cycles[book] = {"gross": 0.0, "fees": 0.0}
            if opened:
                book_lots.append([signed, f.price, f.multiplier])
                cycle["fees"] += f.fee * opened / f.qty
            if f.symbol not in streamed:
                marks[f.symbol] = f.price
            for key in _series_keys(f.account, f.strategy):
                started.add(key)
                realized[key] += pnl
                fees[key] += f.fee
                fills[key] += 1
                volume[key] += f.qty * f.price * f.multiplier
                if f.arrival_price is not None:
                    slip[key].append((f.slippage_bps or 0.0, f.qty * f.price * f.multiplier))
        for key in started:  # every series is evaluated after every event
            path[key].append((event.ts, equity(key)))

    clock = max(e.ts for e in events)
    out = {}
    for key in started:
        ts, eq = zip(*path[key], strict=True)
        times = pd.DatetimeIndex(pd.to_datetime(list(ts), unit="ns", utc=True))
        series = pd.Series(eq, index=times)
        peak = np.maximum.accumulate(np.concatenate([[0.0], series.to_numpy()]))[1:]
        days = series.groupby(_period_labels(times, basis)).last()
        last_day = _period_labels(pd.DatetimeIndex([pd.Timestamp(clock, unit="ns", tz="UTC")]), basis)[0]
        full = pd.date_range(days.index[0], last_day, freq="B" if basis == "trading" else "D")
        year = 252 if basis == "trading" else 365
        day_end = days.reindex(full).ffill()
        base = 1e6 * len({a for (a, s, _) in lots if key[1] in ("_all", a) and key[2] in ("_all", s)})
        changes = day_end.diff().fillna(day_end.iloc[0]).to_numpy() / base
        qty, _ = holdings(key)
        rt = np.array(trips[key])
        wins, losses = rt[rt > 1e-9], rt[rt < -1e-9]  # closer to 0 is float noise: break-even
        std = changes.std(ddof=1) if len(changes) > 1 else 0.0
        downside = math.sqrt(np.mean(np.minimum(changes, 0.0) ** 2))
        weights = sum(w for _, w in slip[key])
        out[key] = {
            "equity": eq[-1],
            "realized_pnl": realized[key],
            "fees": fees[key],
            "unrealized_pnl": eq[-1] - realized[key] + fees[key],
            "gross_exposure": sum(abs(marks[s] * q) for s, q in qty.items()),
            "net_exposure": sum(marks[s] * q for s, q in qty.items()),
            "drawdown": peak[-1] - eq[-1],
            "max_drawdown": float(np.max(peak - series.to_numpy())),
            "drawdown_pct": (peak[-1] - eq[-1]) / (base + peak[-1]),  # of the peak NAV
            "trades": len(rt),
            "wins": len(wins),
            "losses": len(losses),
            "win_rate": len(wins) / len(rt) if len(rt) else None,
            "profit_factor": wins.sum() / -losses.sum() if len(losses) else None,
            "expectancy": rt.mean() if len(rt) else None,
            "avg_win": wins.mean() if len(wins) else None,
            "avg_loss": losses.mean() if len(losses) else None,
            "loss_streak": next((i for i, x in enumerate(reversed(rt)) if x >= -1e-9), len(rt)),
            "sharpe": changes.mean() / std * math.sqrt(year) if len(changes) > 1 and std > 1e-10 else None,
            "sortino": changes.mean() / downside * math.sqrt(year) if len(changes) > 1 and downside > 1e-10 else None,
            "slippage_bps_avg": sum(s * w for s, w in slip[key]) / weights if weights else None,
            "fills": fills[key],
            "volume": volume[key],
        }
    return out


def _close(a: Any, b: Any, key: str) -> bool:
    if a is None or b is None:
        return a is None and b is None
    tol = 1e-6 if key in ("sharpe", "sortino") else 1e-9
    return math.isclose(a, b, rel_tol=tol, abs_tol=1e-6)


quantities = st.sampled_from([0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 7.0])


@st.composite
def streams(draw: st.DrawFn) -> list[Fill | Mark]:
    events: list[Fill | Mark] = []
    ts = T0
    for i in range(draw(st.integers(min_value=1, max_value=60))):
        ts += draw(st.sampled_from([1, 1000, 3_600 * NS, DAY, 3 * DAY]))
        symbol = draw(st.sampled_from(["X", "Y", "Z"]))
        price = draw(st.sampled_from([90.0, 95.5, 100.0, 101.25, 110.0]))
        if draw(st.integers(0, 9)) == 0:
            events.append(Mark(ts, symbol, price))
            continue
        arrival = draw(st.one_of(st.none(), st.sampled_from([99.0, 100.0, 102.0])))
        events.append(
            Fill(
                ts=ts,
                account=draw(st.sampled_from(["A", "B"])),
                strategy=draw(st.sampled_from(["s1", "s2"])),
                symbol=symbol,
                side=draw(st.sampled_from(["buy", "sell"])),
                qty=draw(quantities),
                price=price,
                fill_id=str(i),
                fee=draw(st.sampled_from([0.0, 0.5, 1.0])),
                arrival_price=arrival,
                multiplier=50.0 if symbol == "Z" else 1.0,
            )
        )
    return events


@settings(max_examples=300, deadline=None)
@given(streams(), st.sampled_from(["trading", "calendar"]))
def test_incremental_equals_batch(events: list[Fill | Mark], basis: DayBasis) -> None:
    engine = Engine(day_basis=basis)
    engine.sample = MinSample(0, 0)  # the ratios of this small sample are what is checked
    for event in events:
        if isinstance(event, Mark):
            engine.on_mark(event)
        else:
            engine.on_fill(event)
    expected = batch(events, basis)
    got = {(r["level"], r["account"], r["strategy"]): r for rows in engine.rows().values() for r in rows}
    assert set(got) == set(expected)
    for key, want in expected.items():
        for name, value in want.items():
            assert _close(got[key][name], value, name), (key, name, got[key][name], value)

    # book realized PnL sums to the portfolio's; flat books have exactly zero unrealized PnL
    books = [r for r in got.values() if r["level"] == "book"]
    if not books:
        return
    assert math.isclose(
        sum(r["realized_pnl"] for r in books),
        got[("portfolio", "_all", "_all")]["realized_pnl"],
        rel_tol=1e-9,
        abs_tol=1e-9,
    )
    for (account, strategy), book in engine.books.items():
        if all(not engine.lots(p) for p in book.positions.values()):
            assert got[("book", account, strategy)]["unrealized_pnl"] == 0.0
            assert got[("book", account, strategy)]["gross_exposure"] == 0.0


def test_known_stream_matches_batch() -> None:
    fills = [
        Fill(T0, "A", "s1", "X", "buy", 10, 100.0, "1", fee=1.0),
        Fill(T0 + DAY, "A", "s1", "X", "sell", 4, 110.0, "2", fee=1.0),
        Fill(T0 + 3 * DAY, "B", "s1", "X", "sell", 5, 90.0, "3"),
        Fill(T0 + 3 * DAY + 1, "A", "s1", "X", "sell", 10, 105.0, "4", fee=3.0),
    ]
    engine = Engine()
    engine.sample = MinSample(0, 0)  # the ratios of this small sample are what is checked
    engine.run(fills)
    expected = batch(list(fills))
    row = engine.row(engine.series[("strategy", "_all", "s1")])
    for name, value in expected[("strategy", "_all", "s1")].items():
        assert _close(row[name], value, name), (name, row[name], value)
    assert row["trades"] == 1 and row["expectancy"] == pytest.approx(70 - 3.8)
