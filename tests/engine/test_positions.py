"""Hand-computed cases: FIFO lots, partial closes, flips, shorts, fees, multipliers, marks, drawdown."""

from __future__ import annotations

import pytest

from collector.engine.engine import Engine
from collector.engine.metrics import MinSample
from collector.model import NS, Fill, Mark
from tests.engine.reference_engine import Position

T0 = 1_700_000_000 * NS


def fill(side: str, qty: float, price: float, *, t: int = 0, fee: float = 0.0, mult: float = 1.0, **kw: str) -> Fill:
    return Fill(
        ts=T0 + t,
        account=kw.get("account", "A"),
        strategy=kw.get("strategy", "s"),
        symbol=kw.get("symbol", "X"),
        side=side,
        qty=qty,
        price=price,
        fill_id=f"{side}{qty}{price}{t}",
        fee=fee,
        multiplier=mult,
    )


def book_row(engine: Engine, account: str = "A", strategy: str = "s") -> dict[str, object]:
    return engine.row(engine.series[("book", account, strategy)])


def test_partial_close_realizes_only_the_closed_quantity() -> None:
    position = Position()
    assert position.apply(fill("buy", 10, 100)) == (0.0, None)
    realized, trip = position.apply(fill("sell", 4, 110, t=1))
    assert realized == 40.0 and trip is None  # 4 × (110 − 100)
    assert position.q == 6.0 and position.c == 600.0


def test_fifo_across_lots() -> None:
    position = Position()
    position.apply(fill("buy", 5, 100))
    position.apply(fill("buy", 5, 110, t=1))
    realized, _ = position.apply(fill("sell", 7, 120, t=2))
    assert realized == 5 * 20 + 2 * 10  # oldest lot first
    assert [lot[:3] for lot in position.lots] == [[3.0, 110.0, 1.0]]  # qty, price, multiplier


def test_flip_long_to_short_splits_fees_and_emits_round_trips() -> None:
    position = Position()
    position.apply(fill("buy", 5, 100, fee=1.0))
    realized, trip = position.apply(fill("sell", 8, 90, t=10, fee=8.0))
    assert realized == -50.0
    assert trip is not None
    assert (trip.direction, trip.qty, trip.entry_price, trip.exit_price) == (1, 5.0, 100.0, 90.0)
    assert trip.gross_pnl == -50.0
    assert trip.fees == pytest.approx(1.0 + 8.0 * 5 / 8)  # entry fee + the closing 5/8 of the flip's fee
    assert trip.net_pnl == pytest.approx(-56.0)
    assert trip.holding_ns == 10
    assert position.direction == -1 and position.q == -3.0
    realized, trip = position.apply(fill("buy", 3, 80, t=20))
    assert realized == 30.0  # short 3 from 90 to 80
    assert trip is not None and trip.direction == -1
    assert trip.fees == pytest.approx(3.0)  # the opening 3/8 of the flip's fee
    assert trip.net_pnl == pytest.approx(27.0)


def test_short_round_trip() -> None:
    position = Position()
    position.apply(fill("sell", 2, 50))
    realized, trip = position.apply(fill("buy", 2, 45, t=5))
    assert realized == 10.0
    assert trip is not None and trip.direction == -1 and trip.net_pnl == 10.0
    assert position.direction == 0 and not position.lots


def test_round_trip_over_partial_fills_uses_weighted_prices() -> None:
    position = Position()
    position.apply(fill("buy", 1, 100))
    position.apply(fill("buy", 3, 104, t=1))
    position.apply(fill("sell", 2, 110, t=2))
    _, trip = position.apply(fill("sell", 2, 106, t=3))
    assert trip is not None
    assert trip.entry_price == pytest.approx((100 + 3 * 104) / 4)
    assert trip.exit_price == pytest.approx(108.0)
    assert trip.gross_pnl == pytest.approx(4 * 108 - (100 + 312))


def test_fractional_quantities_return_exactly_to_flat() -> None:
    position = Position()
    for t in range(3):
        position.apply(fill("buy", 0.1, 100, t=t))
    realized, trip = position.apply(fill("sell", 0.3, 101, t=5))
    assert trip is not None and realized == pytest.approx(0.3)
    assert position.q == 0.0 and position.c == 0.0 and position.direction == 0


def test_multiplier_scales_pnl_and_notional() -> None:
    engine = Engine()
    engine.on_fill(fill("buy", 2, 5000, mult=50, symbol="ES"))
    engine.on_fill(fill("sell", 2, 5010, t=1, mult=50, symbol="ES"))
    row = book_row(engine)
    assert row["realized_pnl"] == 2 * 10 * 50
    assert row["volume"] == 2 * 5000 * 50 + 2 * 5010 * 50


def test_marks_update_unrealized_pnl_and_exposure() -> None:
    engine = Engine()
    engine.on_fill(fill("buy", 10, 100))
    engine.on_mark(Mark(T0 + 1, "X", 105.0))
    row = book_row(engine)
    assert (row["unrealized_pnl"], row["gross_exposure"], row["net_exposure"]) == (50.0, 1050.0, 1050.0)


def test_last_fill_price_across_books_is_the_mark_without_a_marks_stream() -> None:
    engine = Engine()
    engine.on_fill(fill("buy", 10, 100))
    engine.on_fill(fill("sell", 1, 95, t=1, account="B"))  # another book trades X at 95
    assert book_row(engine)["unrealized_pnl"] == -50.0
    engine.on_mark(Mark(T0 + 2, "X", 101.0))
    engine.on_fill(fill("buy", 1, 90, t=3, account="B"))  # with a marks stream, fills no longer mark X
    assert book_row(engine)["unrealized_pnl"] == 10.0


def test_drawdown_after_a_mark() -> None:
    engine = Engine()
    engine.on_fill(fill("buy", 10, 100))
    engine.on_mark(Mark(T0 + 1, "X", 110.0))
    engine.on_mark(Mark(T0 + 2, "X", 95.0))
    row = book_row(engine)
    assert (row["drawdown"], row["max_drawdown"]) == (150.0, 150.0)  # peak 100 → equity −50
    engine.on_mark(Mark(T0 + 3, "X", 105.0))
    row = book_row(engine)
    assert (row["drawdown"], row["max_drawdown"], row["equity"]) == (50.0, 150.0, 50.0)


def test_aggregates_net_positions_per_symbol_and_sum_pnl() -> None:
    engine = Engine(capital_by_account={"A": 2e6, "B": 1e6})
    engine.on_fill(fill("buy", 10, 100, account="A", fee=1.0))
    engine.on_fill(fill("sell", 4, 110, t=1, account="B", fee=2.0))
    strategy = engine.row(engine.series[("strategy", "_all", "s")])
    # A long 10 marked at 110 (+100), B short 4 at 110 (0): net position 6 × 110
    assert strategy["unrealized_pnl"] == 100.0
    assert strategy["fees"] == 3.0 and strategy["equity"] == 97.0
    assert strategy["net_exposure"] == 660.0 and strategy["gross_exposure"] == 660.0
    assert strategy["return_cum"] == pytest.approx(97.0 / 3e6)  # base = A + B capital
    account_b = engine.row(engine.series[("account", "B", "_all")])
    assert account_b["return_cum"] == pytest.approx(-2.0 / 1e6)


def test_trade_statistics_and_loss_streak() -> None:
    engine = Engine()
    engine.sample = MinSample(0, 0)  # the ratios of this small sample are what is checked
    for i, (buy, sell) in enumerate([(100, 110), (100, 90), (100, 95), (100, 100), (100, 80)]):
        engine.on_fill(fill("buy", 1, buy, t=2 * i))
        engine.on_fill(fill("sell", 1, sell, t=2 * i + 1))
    row = book_row(engine)
    assert (row["trades"], row["wins"], row["losses"]) == (5, 1, 3)  # the flat trade is neither
    assert row["win_rate"] == 0.2
    assert row["profit_factor"] == pytest.approx(10 / 35)
    assert row["expectancy"] == pytest.approx(-25 / 5)
    assert (row["avg_win"], row["avg_loss"]) == (10.0, pytest.approx(-35 / 3))
    assert row["payoff_ratio"] == pytest.approx(10 / (35 / 3))
    assert row["loss_streak"] == 1  # the break-even trade ended the earlier run
    assert row["sharpe"] is None  # one day only


def test_undefined_metrics_are_none_not_nan() -> None:
    engine = Engine()
    engine.on_fill(fill("buy", 1, 100))
    row = book_row(engine)
    for name in (
        "win_rate",
        "profit_factor",
        "expectancy",
        "avg_win",
        "avg_loss",
        "payoff_ratio",
        "sharpe",
        "sortino",
        "slippage_bps_avg",
    ):
        assert row[name] is None, name


def test_dust_left_by_a_large_lot_is_flat() -> None:
    """100000.3 − 100000.2 leaves 0.1 + 5.8e-12: the closing 0.1 must flatten the book (2 trips, no exposure)."""
    engine = Engine()
    for i, (side, qty, price) in enumerate(
        [("buy", 100000.3, 10), ("sell", 100000.2, 11), ("sell", 0.1, 11), ("buy", 5, 12), ("sell", 5, 13)]
    ):
        engine.on_fill(fill(side, qty, price, t=i))
    for key in [("book", "A", "s"), ("strategy", "_all", "s"), ("account", "A", "_all"), ("portfolio", "_all", "_all")]:
        row = engine.row(engine.series[key])
        assert row["trades"] == 2 and row["wins"] == 2, key
        assert row["gross_exposure"] == 0.0 and row["net_exposure"] == 0.0 and row["unrealized_pnl"] == 0.0, key
        assert row["realized_pnl"] == pytest.approx(100000.3 * 1 + 5 * 1, rel=1e-12)


def test_tiny_lot_closed_by_a_huge_fill_flips_without_crashing() -> None:
    """buy 1e-9, sell 1e8: closes 1e-9 (the float 1e8 − 1e-9 == 1e8) and opens a short of 1e8."""
    position = Position()
    position.apply(fill("buy", 1e-9, 10))
    realized, trip = position.apply(fill("sell", 1e8, 11, t=1))
    assert trip is not None and trip.qty == 1e-9 and trip.exit_price == 11.0
    assert realized == pytest.approx(1e-9, rel=1e-9)
    assert position.direction == -1 and position.q == -1e8
    engine = Engine()
    engine.on_fill(fill("buy", 1e-9, 10))
    engine.on_fill(fill("sell", 1e8, 11, t=1))
    assert book_row(engine)["trades"] == 1 and book_row(engine)["net_exposure"] == pytest.approx(-1.1e9)


def test_break_even_within_float_noise_is_neither_win_nor_loss() -> None:
    """buy 50 @6.48, sell 25 @6.53, sell 25 @6.43 nets −2.2e-14 in float: break-even, not a loss."""
    engine = Engine()
    engine.sample = MinSample(0, 0)  # the ratios of this small sample are what is checked
    engine.on_fill(fill("buy", 50, 6.48))
    engine.on_fill(fill("sell", 25, 6.53, t=1))
    engine.on_fill(fill("sell", 25, 6.43, t=2))
    row = book_row(engine)
    assert row["trades"] == 1 and row["wins"] == 0 and row["losses"] == 0 and row["loss_streak"] == 0
    assert row["profit_factor"] is None and row["expectancy"] == 0.0
    # a real one-cent loss on the same size still counts
    engine.on_fill(fill("buy", 50, 6.48, t=3))
    engine.on_fill(fill("sell", 50, 6.4799, t=4))
    assert book_row(engine)["losses"] == 1
