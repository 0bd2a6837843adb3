"""Streaming rule evaluation on hand-made fills: fires, does not fire, resolves, no duplicates."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pandas as pd
import pytest

from collector.alerts.evaluator import AlertEngine, AlertEvent, DailyWatch
from collector.alerts.rules import AlertRules
from collector.config import SimulatorSourceConfig
from collector.engine.engine import Engine
from collector.engine.metrics import MinSample
from collector.model import NS, Fill, Mark
from collector.run.state_data import alerts_data, alerts_from
from collector.sources.simulator import Simulation

T0 = 1_709_301_600 * NS  # 2024-03-01 14:00 UTC, a Friday
MIN = 60 * NS


class Desk:
    """An engine with alert rules; helpers trade round trips of a chosen PnL."""

    def __init__(self, *rules: dict[str, Any], capital: float = 1e6) -> None:
        self.engine = Engine(default_capital=capital)
        self.alerts = AlertEngine(AlertRules.model_validate({"rules": list(rules)}), self.engine)
        self.ts = T0
        self.n = 0
        self.events: list[AlertEvent] = []

    def fill(
        self,
        side: str,
        price: float,
        qty: float = 1.0,
        *,
        strategy: str = "s1",
        account: str = "A",
        arrival: float | None = None,
        dt: int = MIN,
    ) -> list[AlertEvent]:
        self.ts += dt
        self.n += 1
        fill = Fill(
            ts=self.ts,
            account=account,
            strategy=strategy,
            symbol="X",
            side=side,
            qty=qty,
            price=price,
            fill_id=f"f{self.n}",
            arrival_price=arrival,
        )
        events = self.alerts.on_fill(fill, self.engine.on_fill(fill))
        self.events += events
        return events

    def trip(self, pnl: float, **kw: Any) -> list[AlertEvent]:
        self.fill("buy", 100.0, **kw)
        return self.fill("sell", 100.0 + pnl, **kw)

    def tick(self, advance: int) -> list[AlertEvent]:
        self.ts += advance
        events = self.alerts.on_tick(self.engine.take_changed(), self.ts)
        self.events += events
        return events

    def states(self) -> list[tuple[str, str, str]]:
        return [(e.rule.name, e.state, e.strategy) for e in self.events]


LOSS_STREAK = {"name": "streak", "level": "book", "kind": "threshold", "metric": "loss_streak", "op": "ge", "value": 3}


def test_threshold_fires_once_and_resolves() -> None:
    desk = Desk(LOSS_STREAK)
    desk.trip(-1)
    desk.trip(-1)
    assert desk.events == []
    fired = desk.trip(-1)
    assert [(e.state, e.value, e.level, e.account, e.strategy) for e in fired] == [("firing", 3.0, "book", "A", "s1")]
    desk.trip(-1)
    desk.trip(-2)
    assert len(desk.events) == 1  # still firing: no duplicates
    resolved = desk.trip(+5)
    assert [e.state for e in resolved] == ["resolved"]
    assert "loss_streak" in fired[0].message and "A/s1" in fired[0].message


def test_for_delays_firing_in_event_time_and_keep_firing_for_stops_flapping() -> None:
    desk = Desk(LOSS_STREAK | {"for": "10m", "keep_firing_for": "5m"})
    for _ in range(3):
        desk.trip(-1)  # each fill is a minute apart: the third loss at +6 min
    assert desk.events == []  # pending
    desk.tick(3 * MIN)
    assert desk.events == []
    desk.tick(8 * MIN)  # 10 min after the condition became true
    assert desk.states() == [("streak", "firing", "s1")]
    desk.trip(+1)  # clear…
    desk.trip(-1)  # …and back within 5 min: no resolve, no second firing
    assert desk.states() == [("streak", "firing", "s1")]
    desk.trip(+1)
    desk.tick(6 * MIN)
    assert desk.states() == [("streak", "firing", "s1"), ("streak", "resolved", "s1")]


def test_filters_levels_and_drawdown_of_peak_nav() -> None:
    rule = {
        "name": "dd",
        "level": "strategy",
        "kind": "drawdown_pct",
        "threshold": 0.02,
        "filter": {"strategies": ["trend_*"]},
    }
    desk = Desk(rule, capital=1000.0)
    desk.trip(-30, strategy="meanrev_1")  # 3% of its capital, but not a trend strategy
    assert desk.events == []
    desk.trip(+10, strategy="trend_es")  # peak equity 10: peak NAV 1,010
    desk.trip(-15, strategy="trend_es")  # drawdown 15 = 1.49% of it
    assert desk.events == []
    fired = desk.trip(-10, strategy="trend_es")  # drawdown 25 = 2.48%
    assert [(e.level, e.account, e.strategy) for e in fired] == [("strategy", "_all", "trend_es")]
    assert fired[0].value == pytest.approx(25 / 1010)


def test_degradation_fires_after_per_trade_pnl_drops() -> None:
    rule = {"name": "deg", "level": "strategy", "kind": "degradation", "warmup": 20, "threshold": 5}
    desk = Desk(rule)
    for i in range(60):
        desk.trip(2.0 + (i % 5) * 0.5)  # healthy: 2.0 … 4.0
    assert desk.events == []
    for _ in range(6):
        desk.trip(-3.0)
    assert [e.state for e in desk.events] == ["firing"]


def test_slippage_anomaly_fires_on_the_outlier_and_resolves_on_the_next_normal_fill() -> None:
    rule = {"name": "slip", "level": "book", "kind": "slippage_anomaly", "z": 6, "window": 100, "min_samples": 20}
    desk = Desk(rule)
    for i in range(30):
        desk.fill("buy", 100.0 + 0.01 * (i % 3), arrival=100.0)  # 0–2 bps of slippage
    assert desk.events == []
    desk.fill("buy", 100.5, arrival=100.0)  # 50 bps
    desk.fill("buy", 100.01, arrival=100.0)
    assert [e.state for e in desk.events] == ["firing", "resolved"]
    assert desk.events[0].value is not None and desk.events[0].value > 6


def test_staleness_only_inside_trading_hours() -> None:
    rule = {
        "name": "stale",
        "level": "strategy",
        "kind": "staleness",
        "minutes": 30,
        "hours": {"start": "13:30", "end": "20:00"},
    }
    desk = Desk(rule)
    desk.fill("buy", 100.0)  # 14:01 Friday
    desk.tick(20 * MIN)
    assert desk.events == []
    desk.tick(15 * MIN)  # 35 minutes without a fill, inside hours
    assert desk.states() == [("stale", "firing", "s1")]
    desk.fill("sell", 100.0)
    assert desk.states()[-1] == ("stale", "resolved", "s1")
    desk.tick(7 * 3600 * NS)  # 21:36: quiet, but the market is closed
    assert desk.states()[-1] == ("stale", "resolved", "s1")


def test_sharpe_and_opportunity_over_daily_returns() -> None:
    sharpe = {"name": "weak", "level": "strategy", "kind": "sharpe", "below": 0, "window_days": 10, "min_days": 5}
    opportunity = {
        "name": "strong",
        "level": "strategy",
        "kind": "opportunity",
        "psr_above": 0.9,
        "benchmark_sharpe": 0.0,
        "window_days": 10,
        "min_days": 5,
    }
    desk = Desk(sharpe, opportunity, capital=10_000.0)
    for day in range(8):
        desk.trip(10.0 + day % 3, dt=86_400 * NS // 2)  # steady daily gains
    assert ("strong", "firing", "s1") in desk.states()
    assert not any(name == "weak" for name, _, _ in desk.states())
    for day in range(12):
        desk.trip(-15.0 - day % 4, dt=86_400 * NS // 2)
    assert ("weak", "firing", "s1") in desk.states() and ("strong", "resolved", "s1") in desk.states()


def test_health_rules_and_state_survive_export_and_adopt() -> None:
    rule = {"name": "rejects", "level": "collector", "kind": "health", "metric": "reject_rate", "value": 0.05}
    desk = Desk(rule, LOSS_STREAK)
    assert desk.alerts.on_health({"reject_rate": 0.01}, T0) == []
    fired = desk.alerts.on_health({"reject_rate": 0.2}, T0 + NS)
    assert [(e.state, e.level) for e in fired] == [("firing", "collector")]
    for _ in range(3):
        desk.trip(-1)
    state = desk.alerts.export_state()
    again = AlertEngine(desk.alerts.rules, desk.engine)
    again.adopt(state)
    assert again.on_health({"reject_rate": 0.3}, T0 + 2 * NS) == []  # still firing: no duplicate after restart
    desk.alerts = again
    assert desk.trip(-1) == []  # the streak alert is still firing too
    assert [e.state for e in desk.trip(+1)] == ["resolved"]


def test_daily_returns_are_the_engines_closed_days_as_pandas_computes_them() -> None:
    sharpe = {"name": "weak", "level": "strategy", "kind": "sharpe", "below": -100, "window_days": 30, "min_days": 3}
    engine = Engine(default_capital=1e6, day_basis="calendar")
    alerts = AlertEngine(AlertRules.model_validate({"rules": [sharpe]}), engine)
    pnl_on = {0: 100.0, 1: 150.0, 2: -100.0, 5: 250.0, 6: -20.0, 7: 320.0, 9: -50.0, 10: 0.0}  # days 3, 4, 8 quiet
    for n, (day, pnl) in enumerate(pnl_on.items()):
        for leg, (side, price) in enumerate((("buy", 100.0), ("sell", 100.0 + pnl))):
            ts = T0 + day * 86_400 * NS + leg * MIN
            fill = Fill(
                ts=ts, account="A", strategy="s1", symbol="X", side=side, qty=1.0, price=price, fill_id=f"{n}{leg}"
            )
            alerts.on_fill(fill, engine.on_fill(fill))
    watch = next(w for w in alerts.export_state().values() if w.key[0] == "strategy")
    assert isinstance(watch, DailyWatch)
    closes = pd.Series(pnl_on).reindex(range(10), fill_value=0.0).cumsum()  # equity at each day's end, days 0–9
    expected = closes.diff().fillna(closes.iloc[0]) / 1e6
    assert list(watch.days.returns) == pytest.approx(list(expected))
    assert watch.cached == pytest.approx(expected.mean() / expected.std(ddof=1) * math.sqrt(252))


def test_loss_streak_is_judged_against_the_series_own_loss_rate() -> None:
    rule = {"name": "streak", "level": "book", "kind": "loss_streak", "probability": 0.01, "min_trades": 20}
    desk = Desk(rule)
    for i in range(40):
        desk.trip(-1 if i % 5 == 0 else +1, strategy="rarely_loses")  # 8 losses in 40
        desk.trip(-1 if i % 2 == 0 else +1, strategy="coin_flip")  # 20 losses in 40
    for streak in range(1, 10):
        desk.trip(-1, strategy="rarely_loses")
        desk.trip(-1, strategy="coin_flip")
        fired = {e.strategy: e.value for e in desk.events if e.state == "firing"}
        # q = (losses + 1) / (trades + 2): 4 losses in a row alert the first, the second needs 9
        assert ("rarely_loses" in fired) == (streak >= 4) and ("coin_flip" in fired) == (streak >= 9)
    assert fired["rarely_loses"] == pytest.approx((13 / 46) ** 4)
    assert fired["coin_flip"] == pytest.approx((30 / 51) ** 9)
    assert [e.state for e in desk.trip(+1, strategy="coin_flip")] == ["resolved"]


def _stream(fills: int) -> list[list[Fill | Mark]]:
    simulation = Simulation(SimulatorSourceConfig(type="simulator", seed=5), T0)
    batches: list[list[Fill | Mark]] = []
    while sum(isinstance(e, Fill) for batch in batches for e in batch) < fills:
        batches.append(simulation.step(120.0))
    return batches


def test_batches_give_the_same_transitions_as_fill_by_fill_for_observation_rules() -> None:
    rules = AlertRules.model_validate(
        {
            "rules": [
                {"name": "slip", "level": "book", "kind": "slippage_anomaly", "z": 3, "window": 60, "min_samples": 20},
                {"name": "deg", "level": "strategy", "kind": "degradation", "warmup": 20, "threshold": 2},
            ]
        }
    )
    batches = _stream(6_000)

    def transitions(batched: bool) -> list[tuple[str, str, tuple[str, str, str], int]]:
        engine = Engine()
        alerts = AlertEngine(rules, engine, log_events=False)
        out: list[AlertEvent] = []
        for batch in batches:
            if batched:
                clock = engine.clock_ns
                out += alerts.on_batch(batch, engine.on_events(batch), clock)
                continue
            for event in batch:
                if isinstance(event, Fill):
                    out += alerts.on_fill(event, engine.on_fill(event))
                else:
                    engine.on_mark(event)
        return [(e.rule.name, e.state, (e.level, e.account, e.strategy), e.ts_ns) for e in out]

    one_by_one = transitions(False)
    assert len(one_by_one) > 10 and {t[0] for t in one_by_one} == {"slip", "deg"}
    assert transitions(True) == one_by_one


def test_windows_continue_across_a_checkpoint_of_the_alert_states() -> None:
    rules = AlertRules.model_validate(
        {
            "rules": [
                {"name": "slip", "level": "book", "kind": "slippage_anomaly", "z": 3, "window": 60, "min_samples": 20},
                {"name": "slip-s", "level": "strategy", "kind": "slippage_anomaly", "z": 2.5, "window": 30},
                {"name": "dd", "level": "strategy", "kind": "drawdown_pct", "threshold": 0.0001, "fast_path": True},
            ]
        }
    )
    batches = _stream(4_000)

    def run(engine: Engine, alerts: AlertEngine, part: list[list[Fill | Mark]]) -> list[tuple[Any, ...]]:
        out: list[AlertEvent] = []
        for batch in part:
            clock = engine.clock_ns
            out += alerts.on_batch(batch, engine.on_events(batch), clock)
        return [(e.rule.name, e.state, e.strategy, e.account, e.value, e.ts_ns) for e in out]

    engine = Engine()
    straight = run(engine, AlertEngine(rules, engine, log_events=False), batches)
    assert {t[0] for t in straight} == {"slip", "slip-s", "dd"}
    engine = Engine()
    first = AlertEngine(rules, engine, log_events=False)
    got = run(engine, first, batches[: len(batches) // 2])
    restored = alerts_from(orjson.loads(orjson.dumps(alerts_data(first.export_state()))), rules)
    second = AlertEngine(rules, engine, log_events=False)
    second.adopt(restored)
    got += run(engine, second, batches[len(batches) // 2 :])
    assert got == straight


DAY = 86_400 * NS


@pytest.mark.parametrize(
    ("basis", "days", "round_trips", "fires"),
    [
        ("trading", 20, 30, set()),  # the defaults: too few days and round trips for either
        ("calendar", 8, 2, {"sharpe", "avg-win"}),
        ("trading", 8, 30, set()),  # 10 calendar days are 6 trading days (a weekend is its Monday)
        ("calendar", 8, 30, {"sharpe"}),
        ("trading", 20, 2, {"avg-win"}),
    ],
)
def test_row_metrics_use_the_engines_day_basis_and_minimum_sample(
    basis: str, days: int, round_trips: int, fires: set[str]
) -> None:
    rules = [
        {"name": "sharpe", "level": "book", "kind": "threshold", "metric": "sharpe", "op": "gt", "value": -1e9},
        {"name": "avg-win", "level": "book", "kind": "threshold", "metric": "avg_win", "op": "gt", "value": 0},
    ]
    desk = Desk(*rules)
    desk.engine.day_basis = basis  # type: ignore[assignment]
    desk.engine.sample = MinSample(days, round_trips)
    for pnl in (5.0, -3.0, 8.0, 1.0, 2.0):  # a fill a day: Saturday to the Monday week after
        desk.trip(pnl, dt=DAY)
    assert {name for name, state, _ in desk.states() if state == "firing"} == fires
