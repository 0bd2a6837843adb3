"""Suggestions: optimization rules evaluated over each strategy's daily history (collector/optimize/policy.py).

Pure code: the history comes from the `perf_1d` rollups (`stratmon optimize`, the job in
`stratmon run`), as PnL at the size it was traded with; `job.unit_histories` divides the applied
multipliers out first, so the rules see the same "unit" PnL as the replay. Only data up to the
decision time is ever used.
"""

from __future__ import annotations

import hashlib
import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collector.optimize.panel import Panel, build
from collector.optimize.policy import Prefix, plan
from collector.optimize.rules import OptimizationConfig
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


def history_panel(histories: dict[str, list[DayStats]]) -> Panel:
    """The histories as a panel; capital = pnl ÷ return (median over the days where both are known)."""
    rows = [
        (d.day, name, ALL_ACCOUNTS, d.pnl, float(d.trades), float(d.wins)) for name, h in histories.items() for d in h
    ]
    capital = {}
    for name, history in histories.items():
        ratios = [d.pnl / d.ret for d in history if d.ret and d.pnl]
        capital[name] = float(np.median(ratios)) if ratios else 1.0
    return build(rows, capital)


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


def suggest(
    config: OptimizationConfig,
    histories: dict[str, list[DayStats]],
    store: ParameterStore,
    change_days: dict[str, list[int]] | None = None,
) -> list[Suggestion]:
    """Every rule's proposals for the next day, from the whole history (the same code as the replay).

    `change_days`: per strategy, the days changes were applied (from the audit log); they split its
    history into the configurations tried, the trials of the Deflated Sharpe guard.
    """
    histories = {name: h for name, h in histories.items() if h}
    if not histories:
        return []
    panel = history_panel(histories)
    prefix = Prefix(panel)
    t = len(panel.days)
    trials = {
        j: trial_sharpes(histories[name], (change_days or {}).get(name, [])) for j, name in enumerate(panel.strategies)
    }
    out: list[Suggestion] = []
    for rule in config.rules:
        if rule.action.reallocate:
            continue  # the allocation learner proposes those (optimize/allocation.py)
        param = "enabled" if rule.action.pause else rule.action.param
        assert param is not None
        current = np.array(
            [
                float(store.get(s, ALL_ACCOUNTS, param, p.default)) if (p := config.parameter(param, s)) else np.nan
                for s in panel.strategies
            ]
        )
        for proposal in plan(config, rule, prefix, t).proposals(t, current, trials):
            strategy = panel.strategies[proposal.unit]
            evidence = proposal.evidence
            shown = ", ".join(f"{k} {v:.3g}" for k, v in evidence.items())
            old = store.get(strategy, ALL_ACCOUNTS, param, config.parameter(param, strategy).default)  # type: ignore[union-attr]
            out.append(
                Suggestion(
                    rule.name,
                    strategy,
                    ALL_ACCOUNTS,
                    param,
                    old,
                    proposal.value,
                    f"{rule.summary or rule.name}: {shown}",
                    proposal.confidence,
                    rule.risk,
                    {**evidence, "until_day": int(panel.days[-1])},
                )
            )
    return out
