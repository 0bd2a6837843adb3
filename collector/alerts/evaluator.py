"""Streaming evaluation of alert rules inside the engine thread, once per batch the engine booked.

A rule is evaluated only when its inputs changed:
- observations (a fill's slippage, a closed round trip's net PnL) are folded into their detectors
  in event order, and the rule's state machine steps at each one, so one outlier inside a batch
  is never averaged away;
- rules on round-trip statistics (loss streaks, trade counts and rates, windows of trips) at the
  end of a batch, for the series that closed a round trip in it; daily Sharpe/PSR when the engine
  closed one of the series' days;
- rules on the current state of a series (perf metrics, drawdown) on every flush tick, for the
  series changed since the last one (by fills or marks) — the tick follows the batch within one
  flush interval — and fast-path ones also at the end of each batch for the series its fills
  changed (their notifications do not wait for a flush); also on ticks: running `for` /
  `keep_firing_for` timers and staleness (which changes with time alone). Health rules on every
  health report.
`on_fill` (one fill at a time: tests, the tear sheet's replay) settles everything at once.

The per-event work is array work: `windows.scan` reads the engine's batch arrays in one compiled
pass (each fill's book, the event clock, every slippage window and its z-score, the fast-path
drawdowns of the batch's books) and hands back only the observations that can step a watch (its
watch active, or the statistic across the threshold); Python steps those, folds the round trips
and re-reads, once per batch, the series the batch changed.
Each (rule, series) pair moves inactive → pending → firing → resolved; only the firing and resolved
transitions are events (written to `alerts`, logged, notified), so a condition that stays true
never produces duplicates.

Time is event time (the engine clock), advanced by wall time while no events arrive, so `for`
durations mean the same with live, replayed and accelerated simulated data.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import time as clock_time
from operator import attrgetter
from typing import Any, ClassVar

import numpy as np

from collector.alerts.detectors import Cusum, DailyReturns, PageHinkley, SlippageHistory, TradeWindow
from collector.alerts.rules import (
    DAYS,
    OPS,
    AlertRules,
    DegradationRule,
    HealthRule,
    LossStreakRule,
    OpportunityRule,
    SharpeRule,
    SlippageRule,
    StalenessRule,
    ThresholdRule,
    _Rule,
)
from collector.alerts.windows import (
    COLUMNS,
    D_ACTIVE,
    D_CAPITAL,
    D_THRESHOLD,
    I_ACTIVE,
    O_BOOK,
    O_DRAWDOWN,
    O_LAST,
    O_NOW,
    O_STEP,
    O_STEP_NOW,
    O_TRIP,
    O_TRIP_NOW,
    OF_WIDTH,
    OI_WIDTH,
    SlippageWindows,
    scan,
)
from collector.engine import layout as L
from collector.engine import metrics
from collector.engine.daily import DAY_NS
from collector.engine.engine import BatchResult, Engine, FillResult
from collector.engine.series import Series
from collector.model import NS, Fill, Mark

log = logging.getLogger(__name__)

COLLECTOR_KEY = ("collector", "_all", "_all")
RECENT = 5  # firing events kept for the live view's summary

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
# perf metrics that only a closed round trip changes: rules on them wait for one
TRIP_METRICS = frozenset({"trades", "wins", "losses", "loss_streak", "win_rate", "expectancy", "profit_factor"})


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
    """One rule on one series: its detector state and its pending/firing state machine.

    `settles_on` says when the statistic is re-read: "tick" (the series changed since the last
    tick), "trip" (end of a batch in which the series closed a round trip), "day" (the engine
    closed one of its days) or None (the watch steps per observation: slippage per fill, and
    degradation per round trip, in event order).
    Instance attributes are plain data (numbers, containers, detectors): they are checkpointed.
    """

    settles_on: ClassVar[str | None] = "tick"

    def __init__(self, rule: _Rule, key: tuple[str, str, str]) -> None:
        self.rule = rule
        self.key = key
        self.op, self.threshold = rule.condition()
        self.pending_since: int | None = None
        self.clear_since: int | None = None
        self.firing = False
        self.value: float | None = None

    @abstractmethod
    def statistic(self, series: Series, capital: float, now_ns: int, engine: Engine) -> float | None:
        """The rule's statistic for the series now (None = undefined: the condition is false).

        `engine`: the series' engine, for its settings (day basis, minimum sample of the metrics).
        """

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

    @property
    def trip_driven(self) -> bool:
        return self.window is not None or self.rule.metric in TRIP_METRICS

    def statistic(self, series: Series, capital: float, now_ns: int, engine: Engine) -> float | None:
        if self.window is not None:
            return self.window.metric(self.rule.metric)
        cheap = _CHEAP.get(self.rule.metric)
        if cheap is not None:
            value = cheap(series)
        else:  # with the engine's day basis and minimum sample, as the perf points have it
            value = series.row(capital, now_ns, engine.day_basis, engine.sample)[self.rule.metric]
        return None if value is None else float(value)


class DrawdownWatch(Watch):
    def statistic(self, series: Series, capital: float, now_ns: int, engine: Engine) -> float | None:
        return metrics.drawdown_pct(series.peak - series.equity, capital, series.peak)


class DailyWatch(Watch):
    """Sharpe/PSR (below) or opportunity PSR (above) over a window of daily returns.

    Days are the engine's own (its day basis; quiet periods count as 0): a closed day's return is
    its equity change ÷ capital, read from the series' daily state when the engine closes the day.
    """

    rule: SharpeRule | OpportunityRule
    settles_on = "day"  # only a closed day changes the window, and only an event closes one

    def __init__(self, rule: SharpeRule | OpportunityRule, key: tuple[str, str, str]) -> None:
        super().__init__(rule, key)
        self.days = DailyReturns(rule.window_days)
        self.seen = -1  # periods of the series' daily state taken in (-1: none yet)
        self.close = 0.0  # equity at the end of the last period taken in
        self.cached: float | None = None

    def statistic(self, series: Series, capital: float, now_ns: int, engine: Engine) -> float | None:
        daily = series.daily
        closed = daily.closed.n if daily.closed is not None else 0
        if closed == self.seen:
            return self.cached
        if self.seen < 0 or capital <= 0:  # a new watch on an old series starts its window now
            self.seen, self.close = closed, daily.prev_close
            return None
        # the engine closed a day (then any quiet periods after it, as zeros): take them in
        self.days.push((daily.prev_close - self.close) / capital)
        self.days.push_zeros(closed - self.seen - 1)
        self.seen, self.close = closed, daily.prev_close
        rule, days = self.rule, self.days
        if isinstance(rule, SharpeRule) and rule.statistic == "sharpe":
            self.cached = days.sharpe(rule.min_days)
        else:
            self.cached = days.psr(rule.min_days, rule.benchmark_sharpe)
        return self.cached


class SlippageWatch(Watch):
    rule: SlippageRule
    settles_on = None

    def __init__(self, rule: SlippageRule, key: tuple[str, str, str]) -> None:
        super().__init__(rule, key)
        self.history = SlippageHistory(rule.window, rule.min_samples)

    def statistic(self, series: Series, capital: float, now_ns: int, engine: Engine) -> float | None:
        # re-read only while a timer runs, i.e. while active: then every observation stepped it
        return self.value


class DegradationWatch(Watch):
    rule: DegradationRule
    settles_on = None

    def __init__(self, rule: DegradationRule, key: tuple[str, str, str]) -> None:
        super().__init__(rule, key)
        self.detector: Cusum | PageHinkley = (
            Cusum(rule.warmup, rule.slack) if rule.method == "cusum" else PageHinkley(rule.warmup, rule.delta)
        )

    def statistic(self, series: Series, capital: float, now_ns: int, engine: Engine) -> float | None:
        return self.detector.value


class LossStreakWatch(Watch):
    rule: LossStreakRule
    settles_on = "trip"

    def statistic(self, series: Series, capital: float, now_ns: int, engine: Engine) -> float | None:
        rule = self.rule
        streak = series.loss_streak
        if streak < rule.min_streak:  # most of the time: one read
            return None
        return streak_probability(streak, series.losses, series.trades, rule.min_trades, rule.min_streak)


def streak_probability(streak: int, losses: int, trades: int, min_trades: int, min_streak: int) -> float | None:
    """q^L: the chance that L given round trips in a row all lose, q = (losses + 1) / (trades + 2).

    q is the series' own loss rate with Laplace's rule of succession (never 0 or 1 on a short
    history); None before `min_trades` round trips or below a streak of `min_streak`.
    """
    if trades < min_trades or streak < min_streak:
        return None
    q: float = (losses + 1) / (trades + 2)
    return q**streak


class StalenessWatch(Watch):
    """Minutes since the series' last fill, inside trading hours: time alone raises it (ticks), a fill resets it."""

    rule: StalenessRule
    settles_on = None  # ticks re-read it; a batch's fills only matter to a firing or pending watch (`_settle`)

    def __init__(self, rule: StalenessRule, key: tuple[str, str, str]) -> None:
        super().__init__(rule, key)
        self.last_fill_ns: int | None = None
        self.day = -1  # the UTC day `opens_ns`/`closes_ns` are for: trading hours are computed once a day
        self.opens_ns = 0
        self.closes_ns = -1  # < opens_ns: no trading that day

    def statistic(self, series: Series, capital: float, now_ns: int, engine: Engine) -> float | None:
        return self.minutes(now_ns)

    def minutes(self, now_ns: int) -> float | None:
        if self.last_fill_ns is None or not self.in_trading_hours(now_ns):
            return None
        return (now_ns - self.last_fill_ns) / (60 * NS)

    def in_trading_hours(self, ts_ns: int) -> bool:
        day = ts_ns // DAY_NS
        if day != self.day:
            self.day = day
            self.opens_ns, self.closes_ns = trading_window(day, self.rule)
        return self.opens_ns <= ts_ns <= self.closes_ns


def trading_window(day: int, rule: StalenessRule) -> tuple[int, int]:
    """[open, close] in epoch ns of the rule's trading hours on UTC day `day` (close < open: closed)."""
    hours = rule.hours
    if DAYS[(day + 3) % 7] not in hours.days:  # day 0 (1970-01-01) was a Thursday
        return 0, -1
    midnight = day * DAY_NS
    # clock times have µs resolution: the end second is inclusive to its last nanosecond
    return midnight + _clock_ns(hours.start), midnight + _clock_ns(hours.end) + 999


def _clock_ns(moment: clock_time) -> int:
    return ((moment.hour * 60 + moment.minute) * 60 + moment.second) * NS + moment.microsecond * 1000


class ProposalWatch(Watch):
    """Nothing to do on the stream: Grafana evaluates proposal rules from `suggestions` points."""

    settles_on = None

    def statistic(self, series: Series, capital: float, now_ns: int, engine: Engine) -> float | None:
        return None


class HealthWatch(Watch):
    rule: HealthRule

    def statistic(self, series: Series, capital: float, now_ns: int, engine: Engine) -> float | None:
        raise AssertionError("health rules are evaluated from self-metrics")


WATCHES: dict[str, Callable[[Any, tuple[str, str, str]], Watch]] = {
    "threshold": ThresholdWatch,
    "drawdown_pct": DrawdownWatch,
    "sharpe": DailyWatch,
    "opportunity": DailyWatch,
    "slippage_anomaly": SlippageWatch,
    "degradation": DegradationWatch,
    "loss_streak": LossStreakWatch,
    "staleness": StalenessWatch,
    "health": HealthWatch,
    "proposal": ProposalWatch,
}


@dataclass(eq=False, slots=True)
class _Watched:
    """A series' watches, split by what makes them re-read (built once per series)."""

    series: Series
    watches: list[Watch]
    on_tick: list[Watch] = field(default_factory=list)  # re-read on a tick when the series changed
    fast: list[Watch] = field(default_factory=list)  # … of them fast-path: also at the end of a batch with its fills
    fast_drawdowns: list[DrawdownWatch] = field(default_factory=list)  # … those fast-path ones (read in arrays)
    on_trip: list[Watch] = field(default_factory=list)  # … at the end of a batch with a round trip of the series
    daily: list[Watch] = field(default_factory=list)  # … on the first batch of a new UTC day with its fills
    timed: list[Watch] = field(default_factory=list)  # staleness: re-read on every tick
    day: int = -1  # the UTC day of the series' latest fill when `daily` was last read
    capital: tuple[int, float] = (-1, 0.0)  # (accounts seen, capital base)
    order: int = 0  # when it was made: ticks read series in this order

    def split(self) -> None:
        self.on_tick, self.fast, self.on_trip, self.daily, self.fast_drawdowns = [], [], [], [], []
        self.timed = [watch for watch in self.watches if isinstance(watch, StalenessWatch)]
        for watch in self.watches:
            if watch.settles_on == "day":
                self.daily.append(watch)
            elif watch.settles_on == "trip" or (isinstance(watch, ThresholdWatch) and watch.trip_driven):
                self.on_trip.append(watch)
            elif watch.settles_on == "tick":
                self.on_tick.append(watch)
                if watch.rule.fast_path and isinstance(watch, DrawdownWatch):  # within the batch (in arrays)
                    self.fast_drawdowns.append(watch)
                elif watch.rule.fast_path:  # notified from here within the batch, not a flush later
                    self.fast.append(watch)
        self.day = -1


@dataclass(eq=False, slots=True)
class _Book:
    """What one book's fills feed: its chain's watched series and the per-observation watches."""

    chain: list[_Watched]  # the chain's series that have watches
    windows: list[TradeWindow]  # fed each round trip (of windowed rules, read at the end of the batch)
    trips: list[DegradationWatch]  # fed each round trip, stepped at once
    stale: list[StalenessWatch]  # the chain's staleness watches (they keep the last fill time)
    on_trip: list[_Watched]  # the chain's series with watches read after a round trip
    fast: list[_Watched]  # … with fast-path current-state watches read in Python
    next_day_ns: int = 0  # a fill from here on is the book's first of a later UTC day


class AlertEngine:
    def __init__(self, rules: AlertRules, engine: Engine, log_events: bool = True) -> None:
        self.rules = rules
        self.log_events = log_events  # a report replaying history does not log every transition
        self.engine = engine
        self.by_level: dict[str, list[_Rule]] = {}
        for rule in rules.rules:
            self.by_level.setdefault(rule.level, []).append(rule)
        self._watched: dict[Series, _Watched] = {}
        self._owner: dict[Watch, _Watched] = {}
        self._timed: dict[_Watched, None] = {}  # series with staleness watches (time alone changes them)
        self._waiting: dict[_Watched, None] = {}  # series that may have a running timer (pruned on ticks)
        self._books: dict[int, _Book] = {}  # by the book's series row
        # watches read in arrays by windows.scan: slippage (windows in slots) and fast-path drawdowns
        window = max((r.window for r in rules.rules if isinstance(r, SlippageRule)), default=1)
        self._windows = SlippageWindows(window)
        self._slots: dict[SlippageWatch, int] = {}
        self._slot_watch: list[SlippageWatch] = []
        self._dd_slots: dict[DrawdownWatch, int] = {}
        self._dd_watch: list[DrawdownWatch] = []
        self._ddi = np.zeros((0, 3), np.int64)  # by drawdown slot: D_SERIES, D_ACTIVE, D_TOUCHED
        self._ddf = np.zeros((0, 2))  # D_CAPITAL, D_THRESHOLD
        # per book series row: 1 once built, its chain's slippage slots, its fast drawdown slots (-1: none);
        # a rule gives a chain at most one watch
        self._width = sum(isinstance(r, SlippageRule) for r in rules.rules)
        drawdowns = sum(r.kind == "drawdown_pct" and r.fast_path for r in rules.rules)
        self._table = np.zeros((0, 1 + self._width + drawdowns), np.int64)
        self._seen = np.zeros(0, np.int64)  # scratch of scan, by series row (-1)
        self._oi = np.zeros((0, OI_WIDTH), np.int64)  # scan's output buffers
        self._of = np.zeros((0, OF_WIDTH))
        self.health: list[Watch] = [HealthWatch(rule, COLLECTOR_KEY) for rule in self.by_level.get("collector", [])]
        self.fired = 0
        self.recent: deque[AlertEvent] = deque(maxlen=RECENT)  # the latest firing events (live view)

    def export_state(self) -> dict[tuple[str, tuple[str, str, str]], Watch]:
        """Detector and firing states for the checkpoint, by (rule name, series key)."""
        for watch, slot in self._slots.items():
            self._windows.save(slot, watch.history)
        state = {(w.rule.name, w.key): w for watched in self._watched.values() for w in watched.watches}
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
                watched = self._watched_of(by_key[key])
                watched.watches = [watch if w.rule.name == name else w for w in watched.watches]
                watched.split()
                self._own(watched)
        self._books.clear()  # rebuilt with the adopted watches (their windows loaded into new slots)
        self._table[:] = 0

    def firing(self) -> Counter[tuple[str, str]]:
        """Alerts firing now, counted by (rule, severity)."""
        count: Counter[tuple[str, str]] = Counter()
        for watched in self._watched.values():
            for watch in watched.watches:
                if watch.firing:
                    count[(watch.rule.name, watch.rule.severity)] += 1
        for watch in self.health:
            if watch.firing:
                count[(watch.rule.name, watch.rule.severity)] += 1
        return count

    def _watched_of(self, series: Series) -> _Watched:
        watched = self._watched.get(series)
        if watched is None:
            rules = self.by_level.get(series.level, [])
            watches = [
                WATCHES[r.kind](r, series.key) for r in rules if r.filter.matches(series.account, series.strategy)
            ]
            watched = self._watched[series] = _Watched(series, watches, order=len(self._watched))
            watched.split()
            self._own(watched)
        return watched

    def _own(self, watched: _Watched) -> None:
        for watch in watched.watches:
            self._owner[watch] = watched
        if watched.timed:
            self._timed[watched] = None
        if any(watch.waiting for watch in watched.watches):
            self._waiting[watched] = None

    def _book(self, row: int) -> _Book:
        first = self.engine.by_index[row]
        chain = [self._watched_of(series) for series in self.engine.books[(first.account, first.strategy)].chain]
        chain = [watched for watched in chain if watched.watches]
        watches = [watch for watched in chain for watch in watched.watches]
        book = _Book(
            chain,
            [w.window for w in watches if isinstance(w, ThresholdWatch) and w.window is not None],
            [w for w in watches if isinstance(w, DegradationWatch)],
            [w for w in watches if isinstance(w, StalenessWatch)],
            [watched for watched in chain if watched.on_trip],
            [watched for watched in chain if watched.fast],
        )
        self._books[row] = book
        slots = [self._slot(w) for w in watches if isinstance(w, SlippageWatch)]
        drawdowns = [self._drawdown_slot(w, watched) for watched in chain for w in watched.fast_drawdowns]
        self._table[row] = -1
        self._table[row, 0] = 1
        self._table[row, 1 : 1 + len(slots)] = slots
        self._table[row, 1 + self._width : 1 + self._width + len(drawdowns)] = drawdowns
        return book

    def _drawdown_slot(self, watch: DrawdownWatch, watched: _Watched) -> int:
        """The watch's slot in the drawdown arrays, with the series' capital base now (a new book: more accounts)."""
        slot = self._dd_slots.get(watch)
        if slot is None:
            slot = self._dd_slots[watch] = len(self._dd_watch)
            self._dd_watch.append(watch)
            if slot == len(self._ddi):
                self._ddi = np.resize(self._ddi, (max(8, 2 * slot), 3))
                self._ddf = np.resize(self._ddf, (max(8, 2 * slot), 2))
            self._ddi[slot] = (watched.series.index, watch.firing or watch.pending_since is not None, 0)
            self._ddf[slot, D_THRESHOLD] = watch.threshold
        self._ddf[slot, D_CAPITAL] = self._capital(watched)
        return slot

    def _capital(self, watched: _Watched) -> float:
        accounts = len(watched.series.accounts)
        if watched.capital[0] != accounts:  # the capital base changes only when the series gains an account
            watched.capital = (accounts, self.engine.capital_base(watched.series))
        return watched.capital[1]

    def _slot(self, watch: SlippageWatch) -> int:
        """The watch's slot (its window loaded into the arrays when it first gets one)."""
        slot = self._slots.get(watch)
        if slot is None:
            active = watch.firing or watch.pending_since is not None
            slot = self._slots[watch] = self._windows.load(watch.history, watch.threshold, active)
            self._slot_watch.append(watch)
        return slot

    def on_batch(self, events: Sequence[Fill | Mark], result: BatchResult, clock_ns: int) -> list[AlertEvent]:
        """The rules after a batch the engine has booked (`clock_ns`: the engine clock before it).

        Per event in arrays: each fill's book row, slippage z-scores (compiled), the engine clock;
        in Python only the observations that step a watch (an active one, or a crossing) and the
        round trips, in event order, then once per book of the batch what its fills changed.
        """
        out: list[AlertEvent] = []
        n, rows = len(result.ei), len(self.engine.by_index)
        if len(self._table) < rows:  # a row for every series (scan indexes them)
            grown = np.zeros((2 * rows, self._table.shape[1]), np.int64)
            grown[: len(self._table)] = self._table
            self._table, self._seen = grown, np.full(2 * rows, -1, np.int64)
        if len(self._oi) < n * max(1, self._table.shape[1]):
            self._oi = np.zeros((2 * n * self._table.shape[1], OI_WIDTH), np.int64)
            self._of = np.zeros((len(self._oi), OF_WIDTH))
        w, oi = self._windows, self._oi
        while True:
            nb, nt, ns, nd = scan(
                COLUMNS, result.ei, result.ef, result.ti, result.tf, self.engine.pi, self.engine.sf, clock_ns,
                self._seen, self._table, self._width, w.ring, w.ordered, w.si, w.sf, self._ddi, self._ddf, oi, self._of,
            )  # fmt: skip
            if nb >= 0:
                break
            for row in oi[: -1 - nb, O_BOOK].tolist():  # new books, made in order, then scanned again
                if row not in self._books:
                    self._book(row)
        if not nb:  # marks change current-state statistics only: ticks re-read them
            return out
        of = self._of
        booked = [(self._books[row], last) for row, last in oi[:nb, O_BOOK : O_LAST + 1].tolist()]
        trips = oi[:nt, O_TRIP : O_TRIP_NOW + 1].tolist()  # [event, book, clock]
        trip_net = of[:nt, 2].tolist()
        steps = oi[:ns, O_STEP : O_STEP_NOW + 1].tolist()  # [event, slot, clock]
        step_value = of[:ns, 0].tolist()
        tripped: dict[_Book, None] = {}
        t = k = 0
        while t < nt or k < ns:  # in event order; slippage before a round trip of the same fill
            if k < ns and (t == nt or steps[k][0] <= trips[t][0]):
                _, slot, now = steps[k]
                watch, v = self._slot_watch[slot], step_value[k]
                value = None if v != v else v
                if watch.firing or watch.pending_since is not None or (value is not None and value > watch.threshold):
                    self._step(watch, value, now, out)
                k += 1
                continue
            _, b, now = trips[t]
            book, net = booked[b][0], trip_net[t]
            t += 1
            tripped[book] = None
            for window in book.windows:
                window.add(net)
            for observer in book.trips:
                value = observer.detector.add(net)
                if (
                    observer.firing
                    or observer.pending_since is not None
                    or compare(value, observer.op, observer.threshold)
                ):
                    self._step(observer, value, now, out)
        dd_slots, dd_values = oi[:nd, O_DRAWDOWN].tolist(), of[:nd, 1].tolist()
        drawdowns = [(self._dd_watch[d], v) for d, v in zip(dd_slots, dd_values, strict=True)]
        self._settle(booked, tripped, drawdowns, int(oi[n - 1, O_NOW]), out)
        return out

    def on_fill(self, fill: Fill, result: FillResult, now: int | None = None) -> list[AlertEvent]:
        """One fill the engine has booked (at event time `now`, the engine clock by default)."""
        clock = self.engine.clock_ns if now is None else now
        out = self.on_batch([fill], self._single(fill, result), clock)
        now = max(clock, fill.ts)
        for watched in self._books[self.engine.books[(fill.account, fill.strategy)].chain[0].index].chain:
            if watched.on_tick:
                self._evaluate(watched, watched.on_tick, now, out)
        return out

    def _single(self, fill: Fill, result: FillResult) -> BatchResult:
        """The batch arrays `Engine.on_events` would have returned for this fill alone."""
        ei, ef = np.zeros((1, L.EI_WIDTH), L.INT), np.zeros((1, L.EF_WIDTH), L.FLOAT)
        ti, tf = np.zeros((1, L.TI_WIDTH), L.INT), np.zeros((1, L.TF_WIDTH), L.FLOAT)
        ei[0, L.E_ID] = self.engine.position_ids[(fill.account, fill.strategy, fill.symbol)]
        ei[0, L.E_TS] = fill.ts
        slippage = fill.slippage_bps
        ei[0, L.E_HAS_SLIP] = slippage is not None
        ef[0, L.E_SLIP] = 0.0 if slippage is None else slippage
        tf[0, L.T_REALIZED] = result.realized_pnl
        trips = {}
        if result.round_trip is not None:
            trips[0] = result.round_trip
            ti[0, L.T_HAS] = 1
            tf[0, L.T_NET] = result.round_trip.net_pnl
        return BatchResult([result.realized_pnl], trips, ei, ef, ti, tf)

    def _step(self, watch: Watch, value: float | None, now: int, out: list[AlertEvent]) -> None:
        if (transition := watch.step(value, now)) is not None:
            out.append(self._event(watch, transition, now))
        if watch.waiting and watch.key != COLLECTOR_KEY:
            self._waiting[self._owner[watch]] = None
        if type(watch) is SlippageWatch and (slot := self._slots.get(watch)) is not None:
            self._windows.si[slot, I_ACTIVE] = watch.firing or watch.pending_since is not None
        elif type(watch) is DrawdownWatch and (slot := self._dd_slots.get(watch)) is not None:
            self._ddi[slot, D_ACTIVE] = watch.firing or watch.pending_since is not None

    def _settle(
        self,
        books: list[tuple[_Book, int]],
        tripped: dict[_Book, None],
        drawdowns: list[tuple[DrawdownWatch, float]],
        now: int,
        out: list[AlertEvent],
    ) -> None:
        """Re-read what the batch changed, each series once: last fill times, closed days, round trips.

        `books`: the batch's books with their latest fill time, in the order of their first fill;
        `drawdowns`: their fast-path drawdown watches that are active or cross, with their statistic.
        """
        new_day: list[tuple[_Book, int]] = []  # (book, UTC day) of a book's first fill on a later day
        for book, last in books:
            for watch in book.stale:
                if watch.last_fill_ns is None or watch.last_fill_ns < last:
                    watch.last_fill_ns = last
                    if watch.firing or watch.pending_since is not None:  # idle: a fill cannot make it stale
                        self._step(watch, watch.minutes(now), now, out)
            if last >= book.next_day_ns:
                day = last // DAY_NS
                book.next_day_ns = (day + 1) * DAY_NS
                new_day.append((book, day))
        for book, day in new_day:  # only a fill on a later day can close one of the engine's days
            for watched in book.chain:
                if watched.daily and watched.day < day:
                    watched.day = day
                    self._evaluate(watched, watched.daily, now, out)
        for watched in {watched: None for book in tripped for watched in book.on_trip}:
            self._evaluate(watched, watched.on_trip, now, out)
        for watched in {watched: None for book, _ in books for watched in book.fast}:
            self._evaluate(watched, watched.fast, now, out)
        for drawdown, v in drawdowns:
            self._step(drawdown, None if v != v else v, now, out)

    def on_tick(self, changed: set[Series], now_ns: int) -> list[AlertEvent]:
        """Series changed by marks, running timers, and staleness (which changes with time alone)."""
        events: list[AlertEvent] = []
        watched_of = self._watched.get
        # a changed series without current-state watches has nothing to re-read (unless timed or waiting: added)
        candidates = {watched for series in changed if (watched := watched_of(series)) is not None and watched.on_tick}
        candidates.update(self._timed, self._waiting)
        timed, waiting = self._timed, self._waiting
        for watched in sorted(candidates, key=attrgetter("order")):
            recheck = watched.on_tick if watched.series in changed else []
            if watched in timed or watched in waiting:  # else no watch of it has a timer running
                due = recheck + [w for w in watched.watches if (w.waiting or w in watched.timed) and w not in recheck]
            else:
                due = recheck
            if due:
                self._evaluate(watched, due, now_ns, events)
            if watched in waiting and not any(w.waiting for w in watched.watches):
                del waiting[watched]
        return events

    def on_health(self, values: dict[str, float | None], now_ns: int) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        for watch in self.health:
            assert isinstance(watch.rule, HealthRule)
            transition = watch.step(values.get(watch.rule.metric), now_ns)
            if transition is not None:
                events.append(self._event(watch, transition, now_ns))
        return events

    def _evaluate(self, watched: _Watched, watches: list[Watch], now: int, out: list[AlertEvent]) -> None:
        series = watched.series
        capital = self._capital(watched)
        for watch in watches:
            value = watch.statistic(series, capital, now, self.engine)
            # an undefined statistic (most loss-streak reads) is never alarming: no compare call
            if (
                watch.firing
                or watch.pending_since is not None
                or (value is not None and compare(value, watch.op, watch.threshold))
            ):
                self._step(watch, value, now, out)
            else:
                watch.value = value

    def _event(self, watch: Watch, state: str, now: int) -> AlertEvent:
        rule = watch.rule
        level, account, strategy = watch.key
        where = "collector" if level == "collector" else f"{level} {account}/{strategy}"
        value = "n/a" if watch.value is None else f"{watch.value:.4g}"
        verb = "FIRING" if state == "firing" else "resolved"
        message = f"[{rule.severity}] {verb}: {rule.summary or rule.name} on {where}: {rule.statistic_name()} = {value}"
        message += f" ({OPS[watch.op]} {watch.threshold:g})"
        event = AlertEvent(rule, level, account, strategy, state, watch.value, watch.threshold, now, message)
        if state == "firing":
            self.fired += 1
            self.recent.append(event)
        if self.log_events:
            log.log(logging.WARNING if state == "firing" else logging.INFO, "alert %s", message)
        return event
