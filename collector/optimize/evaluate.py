"""Judging applied changes: each rule against its exact counterfactual, and canaries against their peers.

Rules. A size or allocation change scales PnL linearly, so what the strategy would have made at
the old value on the same days is known exactly. Every `guardrails.evaluation` each rule is judged
over all its strategy-wide changes so far, pooled: the portfolio's daily PnL as traded vs the same
days without the rule's steps (replay.rule_counterfactual), ΔSharpe with a moving-block bootstrap
interval, once its changes have had at least 100 days. A rule whose 99% interval lies below 0
(strict, because it is looked at again and again) is disabled (audited, `disable`), the values it
set go back to their defaults, and a `suggestions` point tells people (alert kind `proposal`).
The former per-change before/after Welch test is gone: with 10 vs 10 days it has almost no power
(docs/optimizer.md has the Monte Carlo table) and rolled back changes that had no effect.

Canaries. A change on one account is compared with the same strategy's other accounts on the
same days: daily differences of returns standardized by each account's own volatility, canary
minus the mean of the others, one-sided t-test; p < `ROLLBACK_P` rolls the canary back, anything
else rolls it out. Day d of a change is its first day at the new value; only data up to the
decision time is used.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from collector.model import NS
from collector.optimize.apply import Applier, Outcome, record_time_ns
from collector.optimize.panel import Array, Panel
from collector.optimize.replay import (
    JUDGE_DAYS,
    JUDGE_LEVEL,
    SCALING,
    Change,
    delta_sharpe_ci,
    judged_rules,
    rule_counterfactual,
)
from collector.optimize.store import ALL_ACCOUNTS, ChangeRecord
from collector.optimize.suggest import DayStats, history_panel

ROLLBACK_P = 0.10
DAY_NS = 86_400 * NS


def paired_hurt_probability(mine: list[float], others: list[float]) -> float | None:
    """P-value of "mine is below others on the same days": one-sided t-test on the paired differences."""
    if len(mine) != len(others) or len(mine) < 3:
        return None
    diff = [a - b for a, b in zip(mine, others, strict=True)]
    sd = statistics.stdev(diff)
    mean = statistics.fmean(diff)
    if sd == 0:
        return 0.0 if mean < 0 else 1.0
    return NormalDist().cdf(mean / (sd / math.sqrt(len(diff))))


@dataclass
class Verdict:
    change: ChangeRecord | None
    decision: str  # rolled back | rolled out | disabled | kept
    p_value: float | None
    outcome: Outcome | None = None
    rule: str = ""
    delta_sharpe: tuple[float, float, float] | None = None


def record_day(record: ChangeRecord) -> int:
    """The first UTC day at the new value (a change at midnight counts from that day)."""
    return -(-record_time_ns(record.time) // DAY_NS)


def judge_rules(applier: Applier, histories: dict[str, list[DayStats]], now_ns: int) -> list[Verdict]:
    """Disable every rule whose pooled contribution is negative at 95% (unit histories: sizes divided out)."""
    config, records = applier.config, applier.audit.records()
    disabled = applier.disabled_rules()
    histories = {k: v for k, v in histories.items() if v}
    if not histories:
        return []
    panel = history_panel(histories)
    index = {name: j for j, name in enumerate(panel.strategies)}
    today = now_ns // DAY_NS
    rows = int(np.searchsorted(panel.days, today))
    changes, multipliers = _paths(applier, records, panel, index, rows)
    least = max(int(config.guardrails.evaluation // 86_400), JUDGE_DAYS)
    actual = (multipliers * np.nan_to_num(panel.pnl[:rows])).sum(axis=1)
    verdicts = []
    for rule in sorted(judged_rules(changes) - disabled):
        start = min(c.day for c in changes if c.rule == rule)
        if rows - start < least:
            continue
        without = rule_counterfactual(panel, multipliers, changes, rule, rows)
        ci = delta_sharpe_ci(actual[start:], without[start:], np.random.default_rng(today), level=JUDGE_LEVEL)
        if not ci[2] < 0:
            continue
        verdicts.append(_disable(applier, rule, ci, records, now_ns))
    return verdicts


def _paths(
    applier: Applier, records: list[ChangeRecord], panel: Panel, index: dict[str, int], rows: int
) -> tuple[list[Change], Array]:
    """Strategy-wide scaling changes as replay `Change`s (row = first day at the new value) and the
    effective multiplier of every strategy on every day they imply."""
    changes = []
    for record in records:
        if record.action not in ("apply", "rollback") or record.account != ALL_ACCOUNTS or record.param not in SCALING:
            continue
        if record.strategy not in index:
            continue
        row = int(np.searchsorted(panel.days, record_day(record)))
        rule = record.rule if record.action == "apply" else f"rollback:{record.rule}"
        changes.append(Change(row, index[record.strategy], record.param, record.old, record.new, rule))
    multipliers = np.ones((rows, len(panel.strategies)))
    for j, strategy in enumerate(panel.strategies):
        multipliers[:, j] = multiplier_path(applier, records, strategy, panel.days[:rows])
    return changes, multipliers


def multiplier_path(applier: Applier, records: list[ChangeRecord], strategy: str, days: npt.NDArray[np.int64]) -> Array:
    """size/default × allocation/default × enabled on each day, from the strategy-wide audit records."""
    config = applier.config
    values: dict[str, list[tuple[int, float]]] = {}
    for record in records:
        if record.action in ("apply", "rollback") and record.strategy == strategy and record.account == ALL_ACCOUNTS:
            values.setdefault(record.param, []).append((record_day(record), float(record.new)))
    out: Array = np.ones(len(days))
    for param in SCALING:
        parameter = config.parameter(param, strategy)
        if parameter is None:
            continue
        default = float(parameter.default)
        path = np.full(len(days), default)
        for day, value in sorted(values.get(param, [])):
            path[days >= day] = value
        if param == "enabled":
            out *= path > 0
        elif default:
            out *= path / default
    return out


def _disable(
    applier: Applier, rule: str, ci: tuple[float, float, float], records: list[ChangeRecord], now_ns: int
) -> Verdict:
    reason = f"pooled contribution ΔSharpe {ci[0]:+.2f} [95% CI {ci[1]:+.2f}, {ci[2]:+.2f}] < 0"
    applier.audit.append(
        ChangeRecord("*", ALL_ACCOUNTS, "rule", True, False, "disable", rule, reason, {"low": ci[1], "high": ci[2]})
    )
    latest: dict[tuple[str, str, str], ChangeRecord] = {}
    for record in records:
        if record.action in ("apply", "rollback"):
            latest[(record.strategy, record.account, record.param)] = record
    outcome = None
    for (strategy, account, param), record in latest.items():
        if record.rule == rule and record.action == "apply":
            outcome = applier.restore_default(strategy, account, param, rule, f"rule disabled: {reason}", now_ns)
    return Verdict(None, "disabled", None, outcome, rule, ci)


def judge_canaries(
    applier: Applier, account_histories: dict[tuple[str, str], list[DayStats]], now_ns: int
) -> list[Verdict]:
    """Roll out (or back) every canary whose window has passed: the canary vs its peers, same days."""
    guardrails = applier.config.guardrails
    records = applier.audit.records()
    done = {r.evidence.get("judged") for r in records if r.action in ("kept", "rollback", "rollout")}
    done |= {r.rolls_back for r in records if r.rolls_back}
    today = now_ns // DAY_NS
    window = int(guardrails.canary.evaluation // 86_400)
    verdicts = []
    for change in records:
        if change.action != "apply" or change.account == ALL_ACCOUNTS or change.id in done:
            continue
        first = record_day(change)
        if today < first + window:
            continue
        days = range(first, first + window)
        mine = _standardized(account_histories.get((change.strategy, change.account), []), days)
        peers = [
            _standardized(history, days)
            for (strategy, account), history in account_histories.items()
            if strategy == change.strategy and account != change.account
        ]
        common = [d for d in days if d in mine and all(d in p for p in peers)] if peers else []
        p = paired_hurt_probability(
            [mine[d] for d in common], [statistics.fmean(peer[d] for peer in peers) for d in common]
        )
        verdicts.append(_act(applier, change, p, now_ns))
    return verdicts


def _standardized(history: list[DayStats], days: range) -> dict[int, float]:
    """Returns on `days`, divided by the account's own volatility over them (sizes differ by account)."""
    values = {d.day: d.ret for d in history if d.day in days}
    sd = statistics.stdev(values.values()) if len(values) >= 2 else 0.0
    return {day: r / sd for day, r in values.items()} if sd > 0 else values


def evaluate_changes(
    applier: Applier,
    histories: dict[str, list[DayStats]],
    account_histories: dict[tuple[str, str], list[DayStats]],
    now_ns: int,
) -> list[Verdict]:
    return judge_canaries(applier, account_histories, now_ns) + judge_rules(applier, histories, now_ns)


def _act(applier: Applier, change: ChangeRecord, p: float | None, now_ns: int) -> Verdict:
    evidence = {"judged": change.id, "p_value": p if p is not None else -1.0}
    if p is not None and p < ROLLBACK_P:
        outcome = applier.rollback(change.id, reason=f"canary hurt (p = {p:.3f})", now_ns=now_ns, automatic=True)
        if outcome.decision.applied:
            return Verdict(change, "rolled back", p, outcome)
        return Verdict(change, "waiting", p, outcome)  # a guardrail (kill switch, budget) holds it back
    outcome = applier.propose(
        change.strategy,
        ALL_ACCOUNTS,
        change.param,
        change.new,
        risk="low",
        rule=change.rule,
        reason=f"canary on {change.account} did not underperform its peers (p = {p})",
        now_ns=now_ns,
        evidence=evidence,
        suggestion_id=change.suggestion_id,
    )
    applier.audit.append(
        ChangeRecord(
            change.strategy,
            change.account,
            change.param,
            change.new,
            change.new,
            "rollout",
            change.rule,
            "evaluation",
            dict(evidence),
            change.suggestion_id,
        )
    )
    return Verdict(change, "rolled out", p, outcome)
