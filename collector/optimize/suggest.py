"""Suggestions: optimization rules evaluated over each strategy's recent daily history.

Pure code: the history comes from the `perf_1d` rollups (`stratmon optimize`, the job in
`stratmon run`) or straight from an engine (the closed-loop benchmark); only data up to the
decision time is ever used.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from collector.alerts.evaluator import compare
from collector.engine.metrics import TRADING_DAYS
from collector.optimize.rules import OptimizationConfig, OptimizationRule, Window
from collector.optimize.statistics import (
    deflated_sharpe_ratio,
    minimum_track_record_length,
    psr_of_returns,
    sample_moments,
)
from collector.optimize.store import ALL_ACCOUNTS, ParameterStore


@dataclass(frozen=True)
class DayStats:
    """One UTC day of one strategy: return on its capital base, PnL, round trips, drawdown at the close."""

    day: int
    ret: float
    pnl: float
    trades: int
    wins: int
    drawdown_pct: float = 0.0


@dataclass
class Suggestion:
    rule: str
    strategy: str
    account: str
    param: str
    old: float | bool
    new: float | bool
    rationale: str
    confidence: float
    risk: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        key = f"{self.rule}|{self.strategy}|{self.account}|{self.param}|{self.evidence.get('until_day')}"
        return hashlib.sha1(key.encode()).hexdigest()[:12]


def window_days(history: list[DayStats], window: Window) -> list[DayStats]:
    """The last `days` days, or as many recent days as it takes to cover `trades` round trips."""
    if window.days is not None:
        return history[-window.days :]
    assert window.trades is not None
    covered, start = 0, len(history)
    while start > 0 and covered < window.trades:
        start -= 1
        covered += history[start].trades
    return history[start:] if covered >= window.trades else []


def window_metrics(days: list[DayStats], benchmark_sharpe: float = 0.0) -> dict[str, float | None]:
    """sharpe (√252, ddof=1), psr (vs an annualized benchmark), win_rate, expectancy, net_pnl, trades, max dd."""
    returns = [d.ret for d in days]
    trades = sum(d.trades for d in days)
    pnl = math.fsum(d.pnl for d in days)
    sharpe = None
    if len(returns) >= 2 and statistics.stdev(returns) > 0:
        sharpe = statistics.fmean(returns) / statistics.stdev(returns) * math.sqrt(TRADING_DAYS)
    return {
        "sharpe": sharpe,
        "psr": psr_of_returns(returns, benchmark_sharpe / math.sqrt(TRADING_DAYS)) if len(returns) >= 3 else None,
        "win_rate": sum(d.wins for d in days) / trades if trades else None,
        "expectancy": pnl / trades if trades else None,
        "net_pnl": pnl,
        "trades": float(trades),
        "max_drawdown_pct": max((d.drawdown_pct for d in days), default=0.0),
        "days": float(len(days)),
    }


def trial_sharpes(history: list[DayStats], change_days: list[int]) -> list[float]:
    """Daily Sharpe of each configuration the strategy has run: its history cut at every applied change."""
    cuts = sorted(d for d in change_days if history and history[0].day < d <= history[-1].day)
    out, start = [], history[0].day if history else 0
    for end in [*cuts, (history[-1].day + 1) if history else 0]:
        segment = [d.ret for d in history if start <= d.day < end]
        if len(segment) >= 3 and statistics.stdev(segment) > 0:
            out.append(statistics.fmean(segment) / statistics.stdev(segment))
        start = end
    return out


def _guard_passes(
    rule: OptimizationRule, days: list[DayStats], metrics: dict[str, float | None], trials: list[float]
) -> bool:
    guard = rule.guard
    psr = metrics["psr"]
    if guard.psr_above is not None and (psr is None or psr <= guard.psr_above):
        return False
    if guard.psr_below is not None and (psr is None or psr >= guard.psr_below):
        return False
    if guard.min_track_record:
        moments = sample_moments([d.ret for d in days])
        if moments is None:
            return False
        sr, skew, kurtosis, n = moments
        needed = minimum_track_record_length(sr, guard.benchmark_sharpe / math.sqrt(TRADING_DAYS), skew, kurtosis)
        if needed is None or n < needed:
            return False
    if guard.dsr_above is not None:
        moments = sample_moments([d.ret for d in days])
        if moments is None or len(trials) < 2:
            return False  # no trials to deflate against yet: not enough evidence
        sr, skew, kurtosis, n = moments
        if deflated_sharpe_ratio(sr, n, trials, skew, kurtosis) <= guard.dsr_above:
            return False
    return True


def _proposal(rule: OptimizationRule, current: float | bool) -> float | bool:
    action = rule.action
    if action.pause:
        return False
    if action.set is not None:
        return action.set
    if action.scale is not None:
        return float(current) * action.scale
    assert action.step is not None
    return float(current) + action.step


def suggest(
    config: OptimizationConfig,
    histories: dict[str, list[DayStats]],
    store: ParameterStore,
    change_days: dict[str, list[int]] | None = None,
) -> list[Suggestion]:
    """Every rule whose window, conditions and guard hold for a strategy, as a proposed change.

    `change_days`: per strategy, the days changes were applied (from the audit log); they split its
    history into the configurations tried, the trials of the Deflated Sharpe guard.
    """
    out: list[Suggestion] = []
    for rule in config.rules:
        if rule.action.reallocate:
            continue  # the allocation learner proposes those (optimize/allocation.py)
        param = "enabled" if rule.action.pause else rule.action.param
        assert param is not None
        for strategy, history in sorted(histories.items()):
            if not any(fnmatch.fnmatchcase(strategy, p) for p in rule.strategies):
                continue
            parameter = config.parameter(param, strategy)
            days = window_days(history, rule.window)
            if parameter is None or len(days) < 2:
                continue
            metrics = window_metrics(days, rule.guard.benchmark_sharpe)
            if not all(compare(metrics[c.metric], c.op, c.value) for c in rule.when):
                continue
            trials = trial_sharpes(history, (change_days or {}).get(strategy, []))
            if not _guard_passes(rule, days, metrics, trials):
                continue
            current = store.get(strategy, ALL_ACCOUNTS, param, parameter.default)
            proposed = _proposal(rule, current)
            if proposed == current:
                continue
            psr = metrics["psr"]
            confidence = (1 - psr if rule.guard.psr_below is not None else psr) if psr is not None else 0.5
            shown = ", ".join(f"{k} {v:.3g}" for k, v in metrics.items() if v is not None)
            out.append(
                Suggestion(
                    rule.name,
                    strategy,
                    ALL_ACCOUNTS,
                    param,
                    current,
                    proposed,
                    f"{rule.summary or rule.name}: {shown} over {len(days)} days",
                    confidence,
                    rule.risk,
                    {**metrics, "until_day": days[-1].day},
                )
            )
    return out
