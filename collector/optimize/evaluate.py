"""Judging applied changes after their evaluation window: keep, roll back, or roll a canary out.

A change is judged by what its target produced: the daily returns in the `evaluation` window after
it against the same number of days before it (the baseline). It is rolled back automatically when
it hurt with enough confidence — a one-sided Welch t-test, p < `ROLLBACK_P`. A canary (a change
applied to one account first) is compared with the same strategy in the other accounts over the
same days; it is rolled out to all accounts unless it underperformed them with that confidence.
Only data up to the decision time is used.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from statistics import NormalDist

from collector.model import NS
from collector.optimize.apply import Applier, Outcome, record_time_ns
from collector.optimize.store import ALL_ACCOUNTS, ChangeRecord
from collector.optimize.suggest import DayStats

ROLLBACK_P = 0.10
DAY_NS = 86_400 * NS


def hurt_probability(before: list[float], after: list[float]) -> float | None:
    """P-value of "after has a lower mean than before" (one-sided Welch t-test, normal approximation)."""
    if len(before) < 3 or len(after) < 3:
        return None
    var_b, var_a = statistics.variance(before), statistics.variance(after)
    scale = math.sqrt(var_b / len(before) + var_a / len(after))
    if scale == 0:
        return 0.0 if statistics.fmean(after) < statistics.fmean(before) else 1.0
    t = (statistics.fmean(after) - statistics.fmean(before)) / scale
    return NormalDist().cdf(t)  # small when after is clearly below before


@dataclass
class Verdict:
    change: ChangeRecord
    decision: str  # kept | rolled back | rolled out | waiting
    p_value: float | None
    outcome: Outcome | None = None


def _returns(history: list[DayStats], first_day: int, last_day: int) -> list[float]:
    return [d.ret for d in history if first_day <= d.day <= last_day]


def evaluate_changes(
    applier: Applier,
    histories: dict[str, list[DayStats]],
    account_histories: dict[tuple[str, str], list[DayStats]],
    now_ns: int,
) -> list[Verdict]:
    """Judge every applied change whose evaluation (or canary) window has passed."""
    guardrails = applier.config.guardrails
    records = applier.audit.records()
    done = {r.evidence.get("judged") for r in records if r.action in ("kept", "rollback", "rollout")}
    done |= {r.rolls_back for r in records if r.rolls_back}
    verdicts = []
    today = now_ns // DAY_NS
    for change in records:
        if change.action != "apply" or change.id in done:
            continue
        day = record_time_ns(change.time) // DAY_NS
        canary = change.account != ALL_ACCOUNTS
        window = int((guardrails.canary.evaluation if canary else guardrails.evaluation) // 86_400)
        if today < day + window:
            continue
        if canary:
            mine = _returns(account_histories.get((change.strategy, change.account), []), day + 1, day + window)
            others = [
                r
                for (strategy, account), history in account_histories.items()
                if strategy == change.strategy and account != change.account
                for r in _returns(history, day + 1, day + window)
            ]
            p = hurt_probability(others, mine)
        else:
            history = histories.get(change.strategy, [])
            p = hurt_probability(_returns(history, day - window + 1, day), _returns(history, day + 1, day + window))
        verdicts.append(_act(applier, change, p, canary, now_ns))
    return verdicts


def _act(applier: Applier, change: ChangeRecord, p: float | None, canary: bool, now_ns: int) -> Verdict:
    evidence = {"judged": change.id, "p_value": p if p is not None else -1.0}
    if p is not None and p < ROLLBACK_P:
        outcome = applier.rollback(change.id, reason=f"hurt its target (p = {p:.3f})", now_ns=now_ns, automatic=True)
        if outcome.decision.applied:
            return Verdict(change, "rolled back", p, outcome)
        return Verdict(change, "waiting", p, outcome)  # a guardrail (kill switch, budget) holds it back
    if canary:
        outcome = applier.propose(
            change.strategy,
            ALL_ACCOUNTS,
            change.param,
            change.new,
            risk="low",
            rule=change.rule,
            reason=f"canary on {change.account} did not underperform (p = {p})",
            now_ns=now_ns,
            evidence=evidence,
            suggestion_id=change.suggestion_id,
        )
        applier.audit.append(_note(change, "rollout", evidence))
        return Verdict(change, "rolled out", p, outcome)
    applier.audit.append(_note(change, "kept", evidence))
    return Verdict(change, "kept", p)


def _note(change: ChangeRecord, action: str, evidence: dict[str, object]) -> ChangeRecord:
    return ChangeRecord(
        change.strategy,
        change.account,
        change.param,
        change.new,
        change.new,
        action,
        change.rule,
        "evaluation",
        dict(evidence),
        change.suggestion_id,
    )
