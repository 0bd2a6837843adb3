"""What the tear sheet records while `stratmon report --html` replays fills: each series' equity path.

An observer of `build_report`, reading the engine through its read API: each period day's close of
every portfolio, account and strategy series (exact: taken when the next day starts, from the
series' daily state), an equity sample of each at the first event of every hour (plots, and their
drawdowns at that resolution), and the portfolio after every event (its drawdowns exactly as the
engine sees them). Reading a few dozen series per event would cost more than the engine itself.
It also evaluates the alert rules over the same fills and reads the optimizer's audit log for the
changes applied in the report's period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from collector.alerts.evaluator import AlertEngine, AlertEvent
from collector.alerts.rules import AlertRules, load_rules
from collector.config import Settings
from collector.engine.daily import PERIODS_PER_YEAR, period_day
from collector.engine.engine import Engine, FillResult
from collector.engine.series import Series
from collector.model import NS, Fill, Mark
from collector.optimize.rules import load_optimization
from collector.optimize.store import AuditLog
from collector.tearsheet_stats import DrawdownTracker, daily_returns, periods

HOUR_NS = 3600 * NS
APPLIED = ("apply", "rollback")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # audit actions that changed a parameter


@dataclass(slots=True)
class SeriesPath:
    """One series' recorded path: hourly samples, period-day closes, drawdowns (see the module docstring)."""

    first_ns: int
    # hour → (equity, peak equity, drawdown in % of peak NAV = (peak − equity) / (capital base + peak))
    hours: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    closes: dict[int, float] = field(default_factory=dict)
    drawdowns: DrawdownTracker = field(default_factory=DrawdownTracker)


@dataclass(slots=True)
class Change:
    """An applied parameter change (or rollback) from the optimizer's audit log."""

    ts_ns: int
    label: str


@dataclass(slots=True)
class Returns:
    """A series' daily returns on the engine's day basis, with what they were computed from."""

    days: list[int]
    values: np.ndarray
    capital: float
    periods_per_year: int


@dataclass
class History:
    """The report observer (see the module docstring)."""

    paths: dict[tuple[str, str, str], SeriesPath] = field(default_factory=dict)
    rules: AlertRules | None = None
    alerts: AlertEngine | None = None
    events: list[AlertEvent] = field(default_factory=list)
    audit: Path | None = None
    min_days: int | None = None  # the engine's minimum samples for Sharpe/Sortino and the trade ratios
    min_round_trips: int | None = None
    _books: int = 0
    _aggregates: list[Series] = field(default_factory=list)
    _capital: dict[tuple[str, str, str], float] = field(default_factory=dict)
    _hour: int = -1
    _day: int = -1

    def __call__(self, engine: Engine, event: Fill | Mark, result: FillResult | None) -> None:
        if self.alerts is None and self.rules is not None:
            self.alerts = AlertEngine(self.rules, engine, log_events=False)
        if isinstance(event, Fill) and self.alerts is not None and result is not None:
            self.events += self.alerts.on_fill(event, result)
        ts = event.ts
        if len(engine.books) != self._books:  # a new book: new aggregates, larger capital bases
            self._books = len(engine.books)
            self._aggregates = [s for s in engine.series.values() if s.level != "book"]
            self._capital = {s.key: engine.capital_base(s) for s in self._aggregates}
            for series in self._aggregates:
                if series.key not in self.paths:
                    self.paths[series.key] = SeriesPath(ts)
        day = period_day(ts, engine.day_basis)
        if day != self._day:  # events come in time order: the previous period day is over
            if self._day >= 0:
                self._close_day(day)
            self._day = day
        hour = ts // HOUR_NS
        if hour != self._hour:
            self._hour = hour
            for series in self._aggregates:
                if series is not engine.portfolio:
                    self._sample(series, ts)
        self._sample(engine.portfolio, ts)  # every event: the portfolio's drawdowns are exact

    def _close_day(self, new_day: int) -> None:
        """Each series' equity at the end of the period day `self._day`.

        A series this event moved into `new_day` has already rolled its daily state, whose
        previous close is that equity; any other series has not changed since.
        """
        for series in self._aggregates:
            daily = series.daily
            self.paths[series.key].closes[self._day] = daily.prev_close if daily.day == new_day else series.equity

    def _sample(self, series: Series, ts: int) -> None:
        path = self.paths[series.key]
        equity = series.equity
        capital = self._capital[series.key]
        tracker = path.drawdowns
        tracker.observe(ts, equity, capital)
        path.hours[ts // HOUR_NS] = (equity, tracker.peak, (tracker.peak - equity) / (capital + tracker.peak))

    def finish(self, engine: Engine) -> None:
        """The state after the last event: the open day's close and a last sample of every series."""
        for series in self._aggregates:
            self.paths[series.key].closes[self._day] = series.equity
            self._sample(series, engine.clock_ns)

    def returns(self, engine: Engine, series: Series) -> Returns:
        """Daily returns from the series' first event's period day to the engine clock's."""
        path = self.paths[series.key]
        basis = engine.day_basis
        days = periods(period_day(path.first_ns, basis), period_day(engine.clock_ns, basis), basis)
        capital = engine.capital_base(series)
        return Returns(days, daily_returns(path.closes, days, capital), capital, PERIODS_PER_YEAR[basis])

    def changes(self, start_ns: int, end_ns: int) -> list[Change]:
        """Applied changes and rollbacks of the audit log inside [start, end]."""
        if self.audit is None:
            return []
        out = []
        for record in AuditLog(self.audit).records():
            if record.action not in APPLIED:
                continue
            try:
                moment = datetime.fromisoformat(str(record.time).replace("Z", "+00:00"))
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=UTC)  # the audit log writes UTC
                ts = (moment - EPOCH) // timedelta(microseconds=1) * 1000  # exact: no float seconds
            except ValueError:
                continue  # a hand-edited record with a bad time: left off the timeline
            if start_ns <= ts <= end_ns:
                out.append(Change(ts, f"{record.action} {record.strategy}/{record.account} {record.param}"))
        return out


def history_for(settings: Settings) -> History:
    """A recorder that also evaluates the configured alert rules and reads the optimizer's audit log."""
    metrics = settings.metrics  # the minimum samples are getattr'd: they arrive with issue 15 item 1
    history = History(
        min_days=getattr(metrics, "min_days", None), min_round_trips=getattr(metrics, "min_round_trips", None)
    )
    if settings.alerts.enabled and Path(settings.alerts.rules).exists():
        history.rules = load_rules(settings.alerts.rules)
    if settings.optimize.enabled and Path(settings.optimize.rules).exists():
        history.audit = load_optimization(settings.optimize.rules).store.audit
    return history
