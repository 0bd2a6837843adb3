"""Streaming evaluation of alert rules inside the engine thread.

A fill re-evaluates the rules of the four series it changed, at once; mark-driven changes, the
`for` / `keep_firing_for` timers and staleness are re-evaluated on every flush tick; health rules
on every health report. Each (rule, series) pair moves inactive → pending → firing → resolved;
only the firing and resolved transitions are events (written to `alerts`, logged, notified), so
a condition that stays true never produces duplicates.

Time is event time (the engine clock), advanced by wall time while no events arrive, so `for`
durations mean the same with live, replayed and accelerated simulated data.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from collector.alerts.detectors import Cusum, DailyReturns, PageHinkley, SlippageHistory, TradeWindow
from collector.alerts.rules import (
    DAYS,
    OPS,
    AlertRules,
    DegradationRule,
    HealthRule,
    OpportunityRule,
    SharpeRule,
    SlippageRule,
    StalenessRule,
    ThresholdRule,
    _Rule,
)
from collector.engine import metrics
from collector.engine.engine import BatchResult, Engine, FillResult
from collector.engine.series import Series
from collector.model import NS, Fill, Mark

log = logging.getLogger(__name__)

COLLECTOR_KEY = ("collector", "_all", "_all")

_CHEAP: dict[str, Callable[[Series], float | int | None]] = {
    "equity": lambda s: s.equity,
    "realized_pnl": lambda s: s.realized,
    "unrealized_pnl": lambda s: s.unrealized,
    "fees": lambda s: s.fees,
    "drawdown": lambda s: s.peak - s.equity,
    "max_drawdown": lambda s: s.max_dd,
    "trades": lambda s: s.trades,
    "wins": lambda s: s.wins,
    "losses": lambda s: s.losses,
    "loss_streak": lambda s: s.loss_streak,
    "fills": lambda s: s.fills,
    "volume": lambda s: s.volume,
    "win_rate": lambda s: metrics.win_rate(s.wins, s.trades),
    "expectancy": lambda s: metrics.expectancy(s.net_sum, s.trades),
    "profit_factor": lambda s: metrics.profit_factor(s.gross_wins, s.gross_losses),
    "slippage_bps_avg": lambda s: metrics.weighted_mean(s.slip_weighted, s.slip_notional),
}


def compare(value: float | None, op: str, threshold: float) -> bool:
    if value is None:
        return False
    if op == "gt":
        return value > threshold
    if op == "ge":
        return value >= threshold
    if op == "lt":
        return value < threshold
    return value <= threshold


@dataclass
class AlertEvent:
    rule: _Rule
    level: str
    account: str
    strategy: str
    state: str  # firing | resolved
    value: float | None
    threshold: float
    ts_ns: int
    message: str
    latency_ms: float | None = None

    def tags(self) -> dict[str, str]:
        return {
            "rule": self.rule.name,
            "severity": self.rule.severity,
            "level": self.level,
            "account": self.account,
            "strategy": self.strategy,
            "state": self.state,
        }


class Watch(ABC):
    """One rule on one series: its detector state and its pending/firing state machine."""

    def __init__(self, rule: _Rule, key: tuple[str, str, str]) -> None:
        self.rule = rule
        self.key = key
        self.op, self.threshold = rule.condition()
        self.pending_since: int | None = None
        self.clear_since: int | None = None
        self.firing = False
        self.value: float | None = None

    def on_fill(self, fill: Fill, result: FillResult, series: Series, capital: float) -> None:  # noqa: B027
        """Fold in a fill of this series (detectors that need per-fill data override this)."""

    @abstractmethod
    def statistic(self, series: Series, capital: float, now_ns: int) -> float | None:
        """The rule's statistic for the series now (None = undefined: the condition is false)."""

    def step(self, value: float | None, now_ns: int) -> str | None:
        """Advance the state machine; 'firing' / 'resolved' on a transition."""
        self.value = value
        rule = self.rule
        if compare(value, self.op, self.threshold):
            self.clear_since = None
            if self.firing:
                return None
            if self.pending_since is None:
                self.pending_since = now_ns
            if now_ns - self.pending_since >= rule.for_ * NS:
                self.firing, self.pending_since = True, None
                return "firing"
            return None
        self.pending_since = None
        if not self.firing:
            return None
        if self.clear_since is None:
            self.clear_since = now_ns
        if now_ns - self.clear_since >= rule.keep_firing_for * NS:
            self.firing, self.clear_since = False, None
            return "resolved"
        return None

    @property
    def waiting(self) -> bool:
        """A timer runs: the state changes with time alone."""
        return self.pending_since is not None or self.clear_since is not None


class ThresholdWatch(Watch):
    rule: ThresholdRule

    def __init__(self, rule: ThresholdRule, key: tuple[str, str, str]) -> None:
        super().__init__(rule, key)
        self.window = TradeWindow(rule.window_trades) if rule.window_trades else None

    def on_fill(self, fill: Fill, result: FillResult, series: Series, capital: float) -> None:
        if self.window is not None and result.round_trip is not None:
            self.window.add(result.round_trip.net_pnl)

    def statistic(self, series: Series, capital: float, now_ns: int) -> float | None:
        if self.window is not None:
            return self.window.metric(self.rule.metric)
        cheap = _CHEAP.get(self.rule.metric)
        value = cheap(series) if cheap is not None else series.row(capital, now_ns)[self.rule.metric]
        return None if value is None else float(value)


class DrawdownWatch(Watch):
    def statistic(self, series: Series, capital: float, now_ns: int) -> float | None:
        return metrics.drawdown_pct(series.peak - series.equity, capital)


class DailyWatch(Watch):
    """Sharpe/PSR (below) or opportunity PSR (above) over a window of daily returns."""

    rule: SharpeRule | OpportunityRule

    def __init__(self, rule: SharpeRule | OpportunityRule, key: tuple[str, str, str]) -> None:
        super().__init__(rule, key)
        self.days = DailyReturns(rule.window_days)
        self.cached: tuple[int, float | None] = (-1, None)  # (days closed, statistic)

    def statistic(self, series: Series, capital: float, now_ns: int) -> float | None:
        if capital <= 0:
            return None
        days = self.days
        days.observe(now_ns, series.equity, capital)
        if self.cached[0] == days.closed:  # only a closed day changes the window
            return self.cached[1]
        rule = self.rule
        if isinstance(rule, SharpeRule) and rule.statistic == "sharpe":
            value = days.sharpe(rule.min_days)
        else:
            value = days.psr(rule.min_days, rule.benchmark_sharpe)
        self.cached = (days.closed, value)
        return value


class SlippageWatch(Watch):
    rule: SlippageRule

    def __init__(self, rule: SlippageRule, key: tuple[str, str, str]) -> None:
        super().__init__(rule, key)
        self.history = SlippageHistory(rule.window, rule.min_samples)

    def on_fill(self, fill: Fill, result: FillResult, series: Series, capital: float) -> None:
        slippage = fill.slippage_bps
        if slippage is not None:
            self.history.add(slippage)

    def statistic(self, series: Series, capital: float, now_ns: int) -> float | None:
        z = self.history.last_z
        return None if z is None else abs(z)


class DegradationWatch(Watch):
    rule: DegradationRule

    def __init__(self, rule: DegradationRule, key: tuple[str, str, str]) -> None:
        super().__init__(rule, key)
        self.detector: Cusum | PageHinkley = (
            Cusum(rule.warmup, rule.slack) if rule.method == "cusum" else PageHinkley(rule.warmup, rule.delta)
        )

    def on_fill(self, fill: Fill, result: FillResult, series: Series, capital: float) -> None:
        if result.round_trip is not None:
            self.detector.add(result.round_trip.net_pnl)

    def statistic(self, series: Series, capital: float, now_ns: int) -> float | None:
        return self.detector.value


class StalenessWatch(Watch):
    rule: StalenessRule

    def __init__(self, rule: StalenessRule, key: tuple[str, str, str]) -> None:
        super().__init__(rule, key)
        self.last_fill_ns: int | None = None

    def on_fill(self, fill: Fill, result: FillResult, series: Series, capital: float) -> None:
        self.last_fill_ns = max(fill.ts, self.last_fill_ns or 0)

    def statistic(self, series: Series, capital: float, now_ns: int) -> float | None:
        if self.last_fill_ns is None or not in_trading_hours(now_ns, self.rule):
            return None
        return (now_ns - self.last_fill_ns) / (60 * NS)


def in_trading_hours(ts_ns: int, rule: StalenessRule) -> bool:
    moment = datetime.fromtimestamp(ts_ns / NS, UTC)
    hours = rule.hours
    return DAYS[moment.weekday()] in hours.days and hours.start <= moment.time().replace(tzinfo=None) <= hours.end


class ProposalWatch(Watch):
    """Nothing to do on the stream: Grafana evaluates proposal rules from `suggestions` points."""

    def statistic(self, series: Series, capital: float, now_ns: int) -> float | None:
        return None


class HealthWatch(Watch):
    rule: HealthRule

    def statistic(self, series: Series, capital: float, now_ns: int) -> float | None:
        raise AssertionError("health rules are evaluated from self-metrics")


WATCHES: dict[str, Callable[[Any, tuple[str, str, str]], Watch]] = {
    "threshold": ThresholdWatch,
    "drawdown_pct": DrawdownWatch,
    "sharpe": DailyWatch,
    "opportunity": DailyWatch,
    "slippage_anomaly": SlippageWatch,
    "degradation": DegradationWatch,
    "staleness": StalenessWatch,
    "health": HealthWatch,
    "proposal": ProposalWatch,
}


class AlertEngine:
    def __init__(self, rules: AlertRules, engine: Engine, log_events: bool = True) -> None:
        self.rules = rules
        self.log_events = log_events  # a report replaying history does not log every transition
        self.engine = engine
        self.by_level: dict[str, list[_Rule]] = {}
        for rule in rules.rules:
            self.by_level.setdefault(rule.level, []).append(rule)
        self.watches: dict[Series, list[Watch]] = {}
        self._capital: dict[Series, tuple[int, float]] = {}  # series → (accounts seen, capital base)
        self.health: list[Watch] = [HealthWatch(rule, COLLECTOR_KEY) for rule in self.by_level.get("collector", [])]
        self.fired = 0

    def export_state(self) -> dict[tuple[str, tuple[str, str, str]], Watch]:
        """Detector and firing states for the checkpoint, by (rule name, series key)."""
        state = {(w.rule.name, w.key): w for watches in self.watches.values() for w in watches}
        state.update({(w.rule.name, w.key): w for w in self.health})
        return state

    def adopt(self, state: dict[tuple[str, tuple[str, str, str]], Watch]) -> None:
        """Continue from checkpointed states whose rule is unchanged (an edited rule starts afresh)."""
        by_key = {series.key: series for series in self.engine.series.values()}
        current = {rule.name: rule for rule in self.rules.rules}
        for (name, key), watch in state.items():
            rule = current.get(name)
            if rule is None or rule != watch.rule:
                continue
            watch.rule = rule
            if key == COLLECTOR_KEY:
                self.health = [watch if w.rule.name == name else w for w in self.health]
            elif key in by_key:
                series = by_key[key]
                watches = self._watches(series)
                self.watches[series] = [watch if w.rule.name == name else w for w in watches]

    def _watches(self, series: Series) -> list[Watch]:
        watches = self.watches.get(series)
        if watches is None:
            watches = self.watches[series] = [
                WATCHES[rule.kind](rule, series.key)
                for rule in self.by_level.get(series.level, [])
                if rule.filter.matches(series.account, series.strategy)
            ]
        return watches

    def on_batch(self, events: Sequence[Fill | Mark], result: BatchResult, clock_ns: int) -> list[AlertEvent]:
        """The rules after a batch the engine has booked (`clock_ns`: the engine clock before it)."""
        out: list[AlertEvent] = []
        trips = result.trips
        for index, event in enumerate(events):
            clock_ns = max(clock_ns, event.ts)
            if type(event) is Fill:
                fill_result = FillResult(result.realized[index], trips.get(index))
                out += self.on_fill(event, fill_result, clock_ns)
        return out

    def on_fill(self, fill: Fill, result: FillResult, now: int | None = None) -> list[AlertEvent]:
        """Update the rules of the four series the fill changed; transitions happen at once (at event time `now`)."""
        engine = self.engine
        now = engine.clock_ns if now is None else now
        events: list[AlertEvent] = []
        for series in engine.books[(fill.account, fill.strategy)].chain:
            watches = self._watches(series)
            if not watches:
                continue
            capital = self._capital_of(series)
            for watch in watches:
                watch.on_fill(fill, result, series, capital)
                self._evaluate(watch, series, capital, now, events)
        return events

    def _capital_of(self, series: Series) -> float:
        """The series' capital base, recomputed only when it gains an account."""
        cached = self._capital.get(series)
        if cached is None or cached[0] != len(series.accounts):
            cached = self._capital[series] = (len(series.accounts), self.engine.capital_base(series))
        return cached[1]

    def on_tick(self, changed: set[Series], now_ns: int) -> list[AlertEvent]:
        """Series changed by marks, running timers, and staleness (which changes with time alone)."""
        events: list[AlertEvent] = []
        for series, watches in self.watches.items():
            recheck = series in changed
            capital = 0.0
            for watch in watches:
                if recheck or watch.waiting or isinstance(watch, StalenessWatch):
                    capital = capital or self._capital_of(series)
                    self._evaluate(watch, series, capital, now_ns, events)
        return events

    def on_health(self, values: dict[str, float | None], now_ns: int) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        for watch in self.health:
            assert isinstance(watch.rule, HealthRule)
            transition = watch.step(values.get(watch.rule.metric), now_ns)
            if transition is not None:
                events.append(self._event(watch, transition, now_ns))
        return events

    def _evaluate(self, watch: Watch, series: Series, capital: float, now: int, events: list[AlertEvent]) -> None:
        transition = watch.step(watch.statistic(series, capital, now), now)
        if transition is not None:
            events.append(self._event(watch, transition, now))

    def _event(self, watch: Watch, state: str, now: int) -> AlertEvent:
        rule = watch.rule
        level, account, strategy = watch.key
        where = "collector" if level == "collector" else f"{level} {account}/{strategy}"
        value = "n/a" if watch.value is None else f"{watch.value:.4g}"
        verb = "FIRING" if state == "firing" else "resolved"
        message = f"[{rule.severity}] {verb}: {rule.summary or rule.name} on {where}: {rule.statistic_name()} = {value}"
        message += f" ({OPS[watch.op]} {watch.threshold:g})"
        if state == "firing":
            self.fired += 1
        if self.log_events:
            log.log(logging.WARNING if state == "firing" else logging.INFO, "alert %s", message)
        return AlertEvent(rule, level, account, strategy, state, watch.value, watch.threshold, now, message)
