"""Walk-forward counterfactual replay of the optimizer on a desk's own daily history.

Decisions for day t use only the rows before t and scale day t's PnL linearly: PnL_t = Σ_s m_s,t ·
pnl_s,t with m = size_multiplier/default × allocation/default × enabled. The configured rules run
through the same guardrails as the live optimizer (bounds, max step, cooldown, daily budget; the
switches and dry run are the live service's, not the replay's); only `risk: low` is applied,
the rest is counted as proposals. Parameters that cannot be replayed from PnL (e.g. `lookback`) are
listed, not applied. Every `guardrails.evaluation` days each rule's pooled contribution is judged
against its exact counterfactual (`judge`), and a rule that hurts with confidence is disabled.

Methods compared: static (the history as it is: today's sizes, 1/N), inverse volatility (weights
∝ 1/σ of the last 60 days' PnL, mean 1, rebalanced daily) and the optimizer. ΔSharpe vs static
comes with a paired moving-block bootstrap 95% CI (the same resampled days for both), and a
placebo: the optimizer on copies of the history with every strategy's edge removed (demeaned)
and the days block-permuted jointly (cross-strategy correlation and short-run clustering kept):
the ΔSharpe it produces by chance, and the p-value of the real one.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from collector.model import NS
from collector.optimize.guardrails import GuardrailBook, GuardrailState
from collector.optimize.panel import Array, Panel, day_text
from collector.optimize.policy import TRADING_DAYS, Plan, Prefix, plan
from collector.optimize.rules import OptimizationConfig

SCALING = ("size_multiplier", "allocation", "enabled")  # what a replay can apply: it scales PnL
BLOCK = 20  # days per bootstrap / permutation block
# A rule is judged every `evaluation` days, so each look must be strict: at least JUDGE_DAYS of its
# changes' effect, and the upper end of a 99% interval below 0 (≈ 15 looks a year keep the chance
# of disabling a rule that does not hurt under ~7.5%, Bonferroni).
JUDGE_DAYS = 5 * BLOCK
JUDGE_LEVEL = 0.99
INVERSE_VOL_WINDOW = 60
DAY_NS = 86_400 * NS


def sharpe(pnl: Array) -> float:
    """Annualized Sharpe of daily PnL: mean / std(ddof=1) · √252 (0 when flat)."""
    sd = float(np.std(pnl, ddof=1)) if len(pnl) > 1 else 0.0
    return float(np.mean(pnl)) / sd * math.sqrt(TRADING_DAYS) if sd > 0 else 0.0


def max_drawdown(pnl: Array) -> float:
    equity = np.concatenate([[0.0], np.cumsum(pnl)])
    return float((np.maximum.accumulate(equity) - equity).max())


def block_indices(n: int, reps: int, rng: np.random.Generator, block: int = BLOCK) -> npt.NDArray[np.int64]:
    """Moving-block bootstrap: `reps` rows of n day indices made of random blocks of `block` days."""
    block = max(1, min(block, n))
    starts = rng.integers(0, n - block + 1, size=(reps, math.ceil(n / block)))
    out: npt.NDArray[np.int64] = (starts[:, :, None] + np.arange(block)).reshape(reps, -1)[:, :n]
    return out


def delta_sharpe_ci(
    a: Array, b: Array, rng: np.random.Generator, reps: int = 1000, level: float = 0.95
) -> tuple[float, float, float]:
    """Sharpe(a) − Sharpe(b) and its paired block-bootstrap interval (95% by default)."""
    point = sharpe(a) - sharpe(b)
    if len(a) < 2 * BLOCK:
        return point, float("nan"), float("nan")
    idx = block_indices(len(a), reps, rng)
    ra, rb = a[idx], b[idx]

    def sharpes(x: Array) -> Array:
        sd = x.std(axis=1, ddof=1)
        out: Array = np.where(sd > 0, x.mean(axis=1) / np.where(sd > 0, sd, 1) * math.sqrt(TRADING_DAYS), 0.0)
        return out

    d = sharpes(ra) - sharpes(rb)
    tail = (1 - level) / 2
    return point, float(np.quantile(d, tail)), float(np.quantile(d, 1 - tail))


@dataclass
class Change:
    day: int  # row index of the first day at the new value
    strategy: int
    param: str
    old: float | bool
    new: float | bool
    rule: str


@dataclass
class Run:
    """One walk-forward pass: effective multipliers per day and strategy, and what was done."""

    multipliers: Array  # (days, strategies)
    changes: list[Change] = field(default_factory=list)
    rolled_back: int = 0
    proposals: dict[str, int] = field(default_factory=dict)  # not applied: rule → count
    not_replayable: dict[str, int] = field(default_factory=dict)  # param → count
    disabled: dict[str, int] = field(default_factory=dict)  # rule → day row it was disabled


def walk_forward(
    config: OptimizationConfig, panel: Panel, warmup: int, judge_rules: bool = True, low_only: bool = False
) -> Run:
    """The configured optimizer over the panel, deciding at the end of each day for the next."""
    rows, units = panel.pnl.shape
    prefix = Prefix(panel)
    values = {name: np.ones(units) for name in SCALING}
    defaults: dict[str, Array] = {}
    for name in SCALING:
        column = []
        for s in panel.strategies:
            parameter = config.parameter(name, s)
            column.append(float(parameter.default) if parameter is not None else 1.0)
        defaults[name] = np.array(column)
        values[name] = defaults[name].copy()
    guardrails = config.guardrails.model_copy(update={"enabled": True, "dry_run": False})
    book = GuardrailBook(guardrails, GuardrailState(), switches=False)
    run = Run(np.ones((rows, units)))
    rules = [r for r in config.rules if not r.action.reallocate and not (low_only and r.risk != "low")]
    evaluation = max(1, int(config.guardrails.evaluation // 86_400))
    changed_by: dict[tuple[int, str], str] = {}
    # rules on day windows are judged for every day at once; trade windows and drawdowns day by day
    plans: dict[str, Plan] = {
        r.name: plan(config, r, prefix)
        for r in rules
        if r.window.days is not None and not any(c.metric == "max_drawdown_pct" for c in r.when)
    }
    for t in range(rows):
        run.multipliers[t] = _effective(values, defaults)
        if t + 1 < warmup or t + 1 >= rows:
            continue
        now_ns = int(panel.days[t] + 1) * DAY_NS  # midnight after day t: decisions for day t + 1
        if judge_rules and (t + 1 - warmup) % evaluation == 0 and run.changes:
            _judge(config, panel, run, t + 1, values, defaults, changed_by, book, now_ns)
        for rule in rules:
            if rule.name in run.disabled:
                continue
            param = "enabled" if rule.action.pause else rule.action.param
            assert param is not None
            current = values.get(param, np.full(units, np.nan))
            if param not in values:
                current = np.array(
                    [
                        float(p.default) if (p := config.parameter(param, s)) is not None else np.nan
                        for s in panel.strategies
                    ]
                )
            verdict = plans.get(rule.name) or plan(config, rule, prefix, t + 1)
            for proposal in verdict.proposals(t + 1, current):
                if rule.risk != "low":
                    run.proposals[rule.name] = run.proposals.get(rule.name, 0) + 1
                    continue
                if param not in values:
                    run.not_replayable[param] = run.not_replayable.get(param, 0) + 1
                    continue
                parameter = config.parameter(param, panel.strategies[proposal.unit])
                assert parameter is not None
                old = _value(values[param][proposal.unit], parameter.type)
                target = (panel.strategies[proposal.unit], "*", param)
                decision = book.decide(parameter, target, old, proposal.value, "low", now_ns)
                if not decision.applied or decision.value is None:
                    continue
                book.record(target, now_ns)
                values[param][proposal.unit] = float(decision.value)
                run.changes.append(Change(t + 1, proposal.unit, param, old, decision.value, rule.name))
                changed_by[(proposal.unit, param)] = rule.name
    return run


def _value(x: float, kind: str) -> float | bool:
    return bool(x) if kind == "bool" else float(x)


def _effective(values: dict[str, Array], defaults: dict[str, Array]) -> Array:
    with np.errstate(invalid="ignore", divide="ignore"):
        size = np.where(defaults["size_multiplier"] != 0, values["size_multiplier"] / defaults["size_multiplier"], 0)
        alloc = np.where(defaults["allocation"] != 0, values["allocation"] / defaults["allocation"], 0)
    out: Array = size * alloc * (values["enabled"] > 0)
    return out


def rule_counterfactual(panel: Panel, multipliers: Array, changes: list[Change], rule: str, upto: int) -> Array:
    """Daily portfolio PnL had `rule` made none of its changes: the same days, each parameter without
    the rule's steps (exact for sizing, since PnL scales linearly)."""
    pnl = np.nan_to_num(panel.pnl[:upto])
    m = multipliers[:upto].copy()
    by_target: dict[tuple[int, str], list[Change]] = {}
    for c in changes:
        by_target.setdefault((c.strategy, c.param), []).append(c)
    for (unit, _), target_changes in by_target.items():
        ordered = sorted(target_changes, key=lambda c: c.day)
        if not any(c.rule == rule for c in ordered):
            continue
        removed = 0.0  # the rule's steps so far
        for i, c in enumerate(ordered):
            if c.day >= upto:
                break
            if c.rule == rule:
                removed += float(c.new) - float(c.old)
            end = ordered[i + 1].day if i + 1 < len(ordered) else upto
            actual = float(c.new)
            without = max(actual - removed, 0.0)
            if actual != 0:
                m[c.day : end, unit] *= without / actual
            elif removed:
                m[c.day : end, unit] = without
    out: Array = (m * pnl).sum(axis=1)
    return out


def _judge(
    config: OptimizationConfig,
    panel: Panel,
    run: Run,
    upto: int,
    values: dict[str, Array],
    defaults: dict[str, Array],
    changed_by: dict[tuple[int, str], str],
    book: GuardrailBook,
    now_ns: int,
) -> None:
    """Disable a rule whose pooled contribution is negative at 95%, and undo its live changes."""
    actual = (run.multipliers[:upto] * np.nan_to_num(panel.pnl[:upto])).sum(axis=1)
    rng = np.random.default_rng(upto)
    for rule in sorted(judged_rules(run.changes) - set(run.disabled)):
        start = min(c.day for c in run.changes if c.rule == rule)
        if upto - start < JUDGE_DAYS:
            continue
        without = rule_counterfactual(panel, run.multipliers, run.changes, rule, upto)
        _, _, high = delta_sharpe_ci(actual[start:], without[start:], rng, reps=200, level=JUDGE_LEVEL)
        if high < 0:
            run.disabled[rule] = upto
            for (unit, param), who in list(changed_by.items()):
                if who != rule:
                    continue
                parameter = config.parameter(param, panel.strategies[unit])
                assert parameter is not None
                old = _value(values[param][unit], parameter.type)
                decision = book.decide(
                    parameter,
                    (panel.strategies[unit], "*", param),
                    old,
                    parameter.default,
                    "low",
                    now_ns,
                    automatic=False,
                )
                if decision.applied and decision.value is not None:
                    values[param][unit] = float(decision.value)
                    run.changes.append(Change(upto, unit, param, old, decision.value, f"rollback:{rule}"))
                    run.rolled_back += 1
                del changed_by[(unit, param)]


def judged_rules(changes: list[Change]) -> set[str]:
    """The rules that made changes (rollbacks are the evaluation's own, not a rule's)."""
    return {c.rule for c in changes if not c.rule.startswith("rollback:")}


def inverse_vol_multipliers(panel: Panel, warmup: int, window: int = INVERSE_VOL_WINDOW) -> Array:
    """Baseline: weights ∝ 1/σ of each strategy's last `window` days of PnL, mean 1, daily, from rows < t."""
    rows, units = panel.pnl.shape
    out = np.ones((rows, units))
    pnl = panel.pnl
    for t in range(max(warmup, window), rows):
        recent = pnl[t - window : t]
        full = (~np.isnan(recent)).sum(axis=0) >= window
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # strategies not trading yet: all-NaN columns
            sd = np.nanstd(recent, axis=0, ddof=1)
        ok = full & (sd > 0)
        if ok.sum() < 2:
            continue
        inv = np.where(ok, 1 / np.where(ok, sd, 1.0), np.nan)
        out[t] = np.where(ok, inv / np.nanmean(inv), 1.0)
    return out


def placebo_panel(panel: Panel, rng: np.random.Generator) -> Panel:
    """A world without edge: every strategy's mean removed, then blocks of days drawn with replacement
    (moving-block bootstrap, jointly across strategies), so each copy's realized means vary by chance
    as a real history's do, with the same correlation, tails and short-run clustering."""
    rows = panel.pnl.shape[0]
    centred = panel.pnl - np.nanmean(panel.pnl, axis=0)
    order = block_indices(rows, 1, rng)[0]
    return Panel(panel.days, panel.strategies, centred[order], panel.trades[order], panel.wins[order], panel.capital)


@dataclass
class Method:
    name: str
    sharpe: float
    delta: float
    low: float
    high: float
    max_drawdown: float
    max_drawdown_pct: float
    turnover: float
    applied: int = 0
    rolled_back: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Replay:
    days: int
    strategies: int
    warmup: int
    methods: list[Method]
    placebo: dict[str, float]
    rules: list[dict[str, Any]]
    proposals: dict[str, int]
    not_replayable: dict[str, int]
    disabled: dict[str, str]
    verdict: str
    supported: bool
    run: Run
    changes: list[dict[str, Any]] = field(default_factory=list)  # every applied change, dated

    def as_dict(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "strategies": self.strategies,
            "warmup": self.warmup,
            "methods": [m.as_dict() for m in self.methods],
            "placebo": self.placebo,
            "rules": self.rules,
            "proposals": self.proposals,
            "not_replayable": self.not_replayable,
            "disabled_rules": self.disabled,
            "verdict": self.verdict,
            "supported": self.supported,
            "changes": self.changes,
        }


def _method(name: str, panel: Panel, m: Array, base: Array, warmup: int, rng: np.random.Generator) -> Method:
    pnl = (m * np.nan_to_num(panel.pnl)).sum(axis=1)[warmup:]
    delta, low, high = delta_sharpe_ci(pnl, base, rng)
    dd = max_drawdown(pnl)
    steps = np.abs(np.diff(m[warmup - 1 :] if warmup > 0 else m, axis=0)).sum(axis=1) / m.shape[1]
    return Method(name, sharpe(pnl), delta, low, high, dd, dd / float(panel.capital.sum()), float(steps.mean()))


def replay(config: OptimizationConfig, panel: Panel, warmup: int = 120, placebo: int = 200, seed: int = 0) -> Replay:
    rows, units = panel.pnl.shape
    if rows < warmup + 2 * BLOCK:
        raise ValueError(f"{rows} days of history; a replay needs at least warmup ({warmup}) + {2 * BLOCK} days")
    rng = np.random.default_rng(seed)
    static = np.nan_to_num(panel.pnl).sum(axis=1)[warmup:]
    run = walk_forward(config, panel, warmup)
    static_method = _method("static (1/N)", panel, np.ones((rows, units)), static, warmup, rng)
    inverse = _method("inverse volatility", panel, inverse_vol_multipliers(panel, warmup), static, warmup, rng)
    optimizer = _method("optimizer", panel, run.multipliers, static, warmup, rng)
    optimizer.applied = sum(1 for c in run.changes if not c.rule.startswith("rollback:"))
    optimizer.rolled_back = run.rolled_back
    chance = []
    for _ in range(placebo):
        copy = placebo_panel(panel, rng)
        m = walk_forward(config, copy, warmup, low_only=True).multipliers
        pnl = (m * np.nan_to_num(copy.pnl)).sum(axis=1)[warmup:]
        chance.append(sharpe(pnl) - sharpe(np.nan_to_num(copy.pnl).sum(axis=1)[warmup:]))
    chance_arr = np.array(chance)
    placebo_summary: dict[str, float] = {"copies": placebo}
    if placebo:
        placebo_summary |= {
            "low": float(np.quantile(chance_arr, 0.025)),
            "median": float(np.median(chance_arr)),
            "high": float(np.quantile(chance_arr, 0.975)),
            "p_value": float((1 + (chance_arr >= optimizer.delta).sum()) / (1 + placebo)),
        }
    rules = _rule_contributions(config, panel, run, warmup, rng)
    supported = bool(optimizer.low > 0 and placebo_summary.get("p_value", 1.0) < 0.05)
    verdict = _verdict(optimizer, placebo_summary, supported)
    disabled = {rule: day_text(int(panel.days[min(day, rows - 1)])) for rule, day in run.disabled.items()}
    log = [
        {
            "date": day_text(int(panel.days[c.day])),
            "strategy": panel.strategies[c.strategy],
            "param": c.param,
            "old": float(c.old),
            "new": float(c.new),
            "rule": c.rule,
        }
        for c in run.changes
    ]
    return Replay(
        rows,
        units,
        warmup,
        [static_method, inverse, optimizer],
        placebo_summary,
        rules,
        run.proposals,
        run.not_replayable,
        disabled,
        verdict,
        supported,
        run,
        log,
    )


def _rule_contributions(
    config: OptimizationConfig, panel: Panel, run: Run, warmup: int, rng: np.random.Generator
) -> list[dict[str, Any]]:
    rows = panel.pnl.shape[0]
    actual = (run.multipliers * np.nan_to_num(panel.pnl)).sum(axis=1)
    out = []
    for rule in config.rules:
        mine = [c for c in run.changes if c.rule == rule.name]
        row: dict[str, Any] = {"rule": rule.name, "risk": rule.risk, "changes": len(mine)}
        if mine:
            start = max(warmup, min(c.day for c in mine))
            without = rule_counterfactual(panel, run.multipliers, run.changes, rule.name, rows)
            delta, low, high = delta_sharpe_ci(actual[start:], without[start:], rng)
            row |= {"delta_sharpe": delta, "low": low, "high": high, "pnl": float((actual - without)[start:].sum())}
        out.append(row)
    return out


def _verdict(optimizer: Method, placebo: dict[str, float], supported: bool) -> str:
    ci = f"ΔSharpe {optimizer.delta:+.2f} [95% CI {optimizer.low:+.2f}, {optimizer.high:+.2f}]"
    p = placebo.get("p_value")
    chance = f", placebo p = {p:.3f}" if p is not None else ""
    if supported:
        return f"supported: the optimizer beat static sizing ({ci}{chance}); automatic changes can be turned on"
    if optimizer.applied == 0:
        return f"nothing to do: the rules made no change on this history ({ci})"
    if not optimizer.low > 0:
        reason = "the interval includes 0"
    elif p is None:
        reason = "no placebo was run (--placebo 0), so chance is not ruled out"
    else:
        reason = "chance produces as much (placebo)"
    return f"not supported: {reason} ({ci}{chance}); keep automatic changes off"
