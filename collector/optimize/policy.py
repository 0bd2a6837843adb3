"""The optimizer's decisions, vectorized over strategies: one rule at one decision day of a panel.

Used by the live optimizer (`suggest`, on the whole history) and by the walk-forward replay (at
every day, on the rows before it), so both take exactly the same decisions. Pure numpy.

Per rule and strategy, over the rule's window (only full windows count: `days` observed days, or
the shortest recent stretch with `trades` round trips):

- metrics: sharpe = mean/std(ddof=1)·√252 of daily returns, psr, win_rate, expectancy, net_pnl,
  trades, max_drawdown_pct (of the cumulative PnL ÷ capital), days;
- reference Sharpe SR* (`guard.reference`): `zero` (the benchmark Sharpe), `desk` (the mean Sharpe
  of the strategies with full windows), `shrunk` (the strategy's own whole-history Sharpe shrunk
  to the desk mean — James–Stein / empirical Bayes: post = m + (1 − B)(SR − m), B = se² / (se² + τ²),
  τ² = max(0, var(SR) − mean(se²)));
- PSR(SR*) = Φ((SR − SR*)/se), se² = (1 − γ₃SR + (γ₄ − 1)/4·SR²)/(n − 1); MinTRL at 95% against SR*;
- multiple testing (`guard.fdr: q`): Benjamini–Hochberg at level q over m = strategies × looks,
  looks = the number of non-overlapping windows observed so far (each is a fresh look at the same
  question); the p-value is one-sided in the guard's direction (psr_below: PSR, psr_above: 1 − PSR,
  neither: two-sided).

Actions: set / scale / step / pause as before; `inverse_vol`: weight ∝ 1/σ(daily PnL) with mean 1
across the strategies with full windows (volatility is the estimable part); `tilt`: size =
post/m (the shrunk Sharpe over the desk mean, the mean-variance weight on top of equal risk),
bounded by the parameter, for strategies whose evidence passes the guard — the others go back to
the default, so the size follows the evidence and returns to the default when it fades. A tilt
needs a desk mean that is itself positive at 95%. `min_change` (relative) is a dead band.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from collector.optimize.panel import Array, Panel
from collector.optimize.rules import OptimizationConfig, OptimizationRule, Parameter
from collector.optimize.statistics import deflated_sharpe_ratio

TRADING_DAYS = 252
Z95 = NormalDist().inv_cdf(0.95)


def _phi(z: Array) -> Array:
    """Φ(z) elementwise (NaN stays NaN)."""
    return np.array([0.5 * math.erfc(-x / math.sqrt(2)) if x == x else math.nan for x in z.tolist()])


@dataclass
class Targets:
    """Per strategy: the rule's parameter (None where not declared), whether the rule applies, bounds."""

    params: list[Parameter | None]
    matches: npt.NDArray[np.bool_]
    default: Array
    low: Array
    high: Array

    @classmethod
    def of(cls, config: OptimizationConfig, rule: OptimizationRule, param: str, strategies: list[str]) -> Targets:
        params = [config.parameter(param, s) for s in strategies]
        matches = np.array(
            [
                p is not None and any(fnmatch.fnmatchcase(s, pat) for pat in rule.strategies)
                for s, p in zip(strategies, params, strict=True)
            ]
        )

        def column(get: Callable[[Parameter], float | bool | None], missing: float) -> Array:
            return np.array([float(v) if p is not None and (v := get(p)) is not None else missing for p in params])

        return cls(
            params,
            matches,
            column(lambda p: p.default, np.nan),
            column(lambda p: p.min, -np.inf),
            column(lambda p: p.max, np.inf),
        )


class Prefix:
    """Prefix sums over days of a panel (row k = the sum of the first k days), NaN days as absent."""

    def __init__(self, panel: Panel) -> None:
        self.panel = panel
        returns = panel.returns
        present = ~np.isnan(returns)
        r = np.where(present, returns, 0.0)
        zero = np.zeros((1, r.shape[1]))

        def cum(x: Array) -> Array:
            out: Array = np.vstack([zero, np.cumsum(x, axis=0)])
            return out

        self.count = cum(present.astype(float))
        self.s1, self.s2, self.s3, self.s4 = cum(r), cum(r * r), cum(r**3), cum(r**4)
        self.trades, self.wins = cum(panel.trades), cum(panel.wins)
        self.pnl = cum(np.where(present, panel.pnl, 0.0))
        equity = self.pnl[1:]
        self.drawdown: Array = (np.maximum.accumulate(np.maximum(equity, 0.0), axis=0) - equity) / panel.capital
        self.targets: dict[str, Targets] = {}
        self.windows: dict[int, Window] = {}  # day windows for every row at once, by length

    def rule_targets(self, config: OptimizationConfig, rule: OptimizationRule, param: str) -> Targets:
        if rule.name not in self.targets:
            self.targets[rule.name] = Targets.of(config, rule, param, self.panel.strategies)
        return self.targets[rule.name]

    def starts(self, t: int, rule: OptimizationRule) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Window start row per strategy for a decision before day t, and whether the window is full."""
        units = self.count.shape[1]
        if rule.window.days is not None:
            start = max(0, t - rule.window.days)
            full = (self.count[t] - self.count[start]) >= rule.window.days
            return np.full(units, start, dtype=np.int64), full
        need = rule.window.trades
        assert need is not None
        starts = np.zeros(units, dtype=np.int64)
        full = np.zeros(units, dtype=bool)
        for j in range(units):
            # the latest start s with trades[t] − trades[s] ≥ need
            target = self.trades[t, j] - need
            s = int(np.searchsorted(self.trades[: t + 1, j], target, side="right")) - 1
            if s >= 0 and target >= 0:
                starts[j], full[j] = s, True
        return starts, full


@dataclass
class Window:
    """Statistics of one window per strategy (arrays over strategies, or days × strategies; NaN = undefined)."""

    n: Array
    sr: Array  # daily Sharpe
    skew: Array
    kurt: Array
    sd: Array
    metrics: dict[str, Array]
    full: npt.NDArray[np.bool_]

    def row(self, t: int) -> Window:
        return Window(
            self.n[t],
            self.sr[t],
            self.skew[t],
            self.kurt[t],
            self.sd[t],
            {k: v[t] for k, v in self.metrics.items()},
            self.full[t],
        )


def _stats(prefix: Prefix, span: Callable[[Array], Array], full: npt.NDArray[np.bool_]) -> Window:
    """Moments and metrics from window sums (`span` turns a prefix-sum array into the window's sums)."""
    n = span(prefix.count)
    with np.errstate(divide="ignore", invalid="ignore"):
        s1, s2, s3, s4 = span(prefix.s1), span(prefix.s2), span(prefix.s3), span(prefix.s4)
        mean = s1 / n
        m2 = np.maximum(s2 / n - mean**2, 0.0)
        m3 = s3 / n - 3 * mean * s2 / n + 2 * mean**3
        m4 = s4 / n - 4 * mean * s3 / n + 6 * mean**2 * s2 / n - 3 * mean**4
        sd = np.sqrt(m2 * n / (n - 1))
        ok = (n >= 3) & (m2 > 1e-300)
        sr = np.where(ok, mean / sd, np.nan)
        skew = np.where(ok, m3 / m2**1.5, np.nan)
        kurt = np.where(ok, m4 / m2**2, np.nan)
        trades, wins, pnl = span(prefix.trades), span(prefix.wins), span(prefix.pnl)
        metrics = {
            "sharpe": sr * math.sqrt(TRADING_DAYS),
            "win_rate": np.where(trades > 0, wins / trades, np.nan),
            "expectancy": np.where(trades > 0, pnl / trades, np.nan),
            "net_pnl": pnl,
            "trades": trades,
            "max_drawdown_pct": np.zeros_like(n),
            "days": n,
        }
    return Window(n, sr, skew, kurt, sd, metrics, full & (n >= 3))


def window_stats(prefix: Prefix, t: int, rule: OptimizationRule, drawdown: bool = True) -> Window:
    """The rule's window before row t, per strategy; day windows come from one computation for all t."""
    days = rule.window.days
    if days is not None:
        if days not in prefix.windows:
            rows = np.arange(prefix.count.shape[0])
            starts = np.maximum(rows - days, 0)
            full = (prefix.count - prefix.count[starts]) >= days
            prefix.windows[days] = _stats(prefix, lambda p: p - p[starts], full)
        w = prefix.windows[days].row(t)
        starts_t = np.full(prefix.count.shape[1], max(0, t - days), dtype=np.int64)
    else:
        starts_t, full_t = prefix.starts(t, rule)
        cols = np.arange(prefix.count.shape[1])
        w = _stats(prefix, lambda p: p[t] - p[starts_t, cols], full_t)
    if drawdown and t:
        w.metrics["max_drawdown_pct"] = np.array(
            [prefix.drawdown[starts_t[j] : t, j].max(initial=0.0) for j in range(len(starts_t))]
        )
    return w


def sharpe_se(w: Window) -> Array:
    """σ̂(SR) = sqrt((1 − γ₃·SR + (γ₄ − 1)/4·SR²)/(n − 1)) at the window's own moments (Mertens)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        out: Array = np.sqrt(np.maximum(1 - w.skew * w.sr + (w.kurt - 1) / 4 * w.sr**2, 0.0) / (w.n - 1))
    return out


def _row_mean(x: Array, mask: npt.NDArray[np.bool_]) -> Array:
    """Mean over the masked strategies of each row (NaN for a row without any), as a column."""
    count = mask.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out: Array = np.where(mask, x, 0.0).sum(axis=1, keepdims=True) / count
    return out


def shrink(sr: Array, se: Array, mask: npt.NDArray[np.bool_]) -> tuple[Array, Array]:
    """Empirical-Bayes posterior Sharpe toward each row's cross-sectional mean: (post, mean m per row).

    post = m + (1 − B)(SR − m), B = se²/(se² + τ²), τ² = max(0, var(SR) − mean(se²)) over the masked.
    """
    m = _row_mean(sr, mask)
    count = mask.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(mask, (sr - m) ** 2, 0.0).sum(axis=1, keepdims=True) / (count - 1)
        tau2 = np.maximum(np.where(count >= 2, var - _row_mean(se**2, mask), 0.0), 0.0)
        b = np.where(se**2 + tau2 > 0, se**2 / (se**2 + tau2), 1.0)
        post = np.where(mask, m + (1 - b) * (sr - m), np.nan)
    return post, m


def benjamini_hochberg(p: Array, mask: npt.NDArray[np.bool_], q: float, tests: Array) -> npt.NDArray[np.bool_]:
    """Row-wise discoveries among `mask` at FDR q, with `tests[row]` hypotheses in the family.

    Reject the k smallest p-values, k = max{i : p₍ᵢ₎ ≤ q·i/m}.
    """
    ranked = np.where(mask & ~np.isnan(p), p, np.inf)
    ordered = np.sort(ranked, axis=1)
    ranks = np.arange(1, p.shape[1] + 1)
    m = np.maximum(tests, mask.sum(axis=1))[:, None]
    passed = ordered <= q * ranks / np.maximum(m, 1)
    last = np.where(passed.any(axis=1), p.shape[1] - 1 - np.argmax(passed[:, ::-1], axis=1), -1)
    cutoff = np.where(last >= 0, ordered[np.arange(len(p)), np.maximum(last, 0)], -np.inf)
    out: npt.NDArray[np.bool_] = ranked <= cutoff[:, None]
    return out


@dataclass
class Proposal:
    unit: int
    param: str
    value: float | bool
    confidence: float
    evidence: dict[str, float] = field(default_factory=dict)


def _compare(values: Array, op: str, threshold: float) -> npt.NDArray[np.bool_]:
    with np.errstate(invalid="ignore"):
        out: npt.NDArray[np.bool_] = {
            "gt": values > threshold,
            "ge": values >= threshold,
            "lt": values < threshold,
            "le": values <= threshold,
        }[op]
    return out & ~np.isnan(values)


@dataclass
class Plan:
    """A rule's verdict for a block of decision rows, before the current values are known.

    `ok`: window full, conditions and guard hold; `target` (inverse_vol, tilt): the new value ÷ the
    default; `evidence`: what a suggestion reports. Row r is the decision before panel row rows[r].
    """

    rule: OptimizationRule
    targets: Targets
    rows: npt.NDArray[np.int64]
    w: Window
    eligible: npt.NDArray[np.bool_]
    ok: npt.NDArray[np.bool_]
    target: Array
    psr: Array
    evidence: dict[str, Array]

    def proposals(self, t: int, current: Array, trials: dict[int, list[float]] | None = None) -> list[Proposal]:
        r = int(np.searchsorted(self.rows, t))
        if r >= len(self.rows) or self.rows[r] != t:
            return []
        rule, action, targets = self.rule, self.rule.action, self.targets
        eligible, ok = self.eligible[r], self.ok[r]
        if action.inverse_vol or action.tilt:
            sized = np.clip(targets.default * self.target[r], targets.low, targets.high)
            with np.errstate(invalid="ignore"):
                moved = np.abs(sized - current) > action.min_change * np.maximum(np.abs(current), 1e-12)
            candidates = np.flatnonzero(eligible & ~np.isnan(sized) & moved)
        else:
            candidates = np.flatnonzero(eligible & ok)
        out = []
        for j in candidates:
            parameter = targets.params[j]
            assert parameter is not None
            if rule.guard.dsr_above is not None and not self._deflated_ok(r, int(j), (trials or {}).get(int(j), [])):
                continue
            old = float(current[j])
            if action.inverse_vol or action.tilt:
                value: float | bool = float(sized[j])
            elif action.pause:
                value = False
            elif action.set is not None:
                value = action.set
            elif action.scale is not None:
                value = old * action.scale
            else:
                assert action.step is not None
                value = old + action.step
            if isinstance(value, float) and parameter.min is not None and parameter.max is not None:
                value = min(max(value, parameter.min), parameter.max)
            if isinstance(value, bool) or parameter.type == "bool":
                if bool(value) == bool(old):
                    continue
            elif value == old or abs(value - old) <= action.min_change * max(abs(old), 1e-12):
                continue
            psr = float(self.psr[r, j])
            confidence = 0.5 if math.isnan(psr) else (1 - psr if rule.guard.psr_below is not None else psr)
            evidence = {k: float(v[r, j]) for k, v in self.evidence.items() if not math.isnan(float(v[r, j]))}
            out.append(Proposal(int(j), parameter.name, value, confidence, evidence))
        return out

    def _deflated_ok(self, r: int, j: int, tried: list[float]) -> bool:
        """Deflated Sharpe above the guard: trials = the configurations tried (the history cut at changes)."""
        if len(tried) < 2:
            return False  # nothing to deflate against yet: not enough evidence
        w = self.w
        dsr = deflated_sharpe_ratio(
            float(w.sr[r, j]), float(w.n[r, j]), tried, float(w.skew[r, j]), float(w.kurt[r, j])
        )
        return dsr > (self.rule.guard.dsr_above or 0.0)


def plan(config: OptimizationConfig, rule: OptimizationRule, prefix: Prefix, t: int | None = None) -> Plan:
    """The rule for every decision row (day windows), or for the decision before row t only."""
    param = "enabled" if rule.action.pause else rule.action.param
    assert param is not None
    targets = prefix.rule_targets(config, rule, param)
    needs_dd = any(c.metric == "max_drawdown_pct" for c in rule.when)
    if rule.window.days is not None and t is None and not needs_dd:
        window_stats(prefix, 0, rule, drawdown=False)  # fills the cache for every row
        w = prefix.windows[rule.window.days]
        rows = np.arange(prefix.count.shape[0], dtype=np.int64)
        whole = _stats(prefix, lambda p: p, np.ones_like(prefix.count, dtype=bool))
    else:
        when = prefix.count.shape[0] - 1 if t is None else t
        one = window_stats(prefix, when, rule, drawdown=needs_dd)
        w = Window(
            one.n[None, :],
            one.sr[None, :],
            one.skew[None, :],
            one.kurt[None, :],
            one.sd[None, :],
            {k: v[None, :] for k, v in one.metrics.items()},
            one.full[None, :],
        )
        rows = np.array([when], dtype=np.int64)
        whole = _stats(prefix, lambda p: p[when : when + 1], np.ones((1, prefix.count.shape[1]), dtype=bool))
    eligible = w.full & targets.matches[None, :]
    ok = eligible.copy()
    for condition in rule.when:
        ok &= _compare(w.metrics[condition.metric], condition.op, condition.value)
    guard = rule.guard
    se = sharpe_se(w)
    reference = np.full(w.sr.shape, guard.benchmark_sharpe / math.sqrt(TRADING_DAYS))
    if guard.reference == "desk":
        reference = np.broadcast_to(_row_mean(w.sr, eligible), w.sr.shape).copy()
    elif guard.reference == "shrunk":
        long_run, _ = shrink(whole.sr, sharpe_se(whole), eligible & ~np.isnan(whole.sr))
        reference = np.where(np.isnan(long_run), reference, long_run)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (w.sr - reference) / np.where(se > 0, se, np.nan)
    psr = np.where(np.isnan(w.sr), np.nan, np.where(se > 0, _phi(z.ravel()).reshape(z.shape), w.sr > reference))
    if guard.psr_above is not None:
        ok &= psr > guard.psr_above
    if guard.psr_below is not None:
        ok &= psr < guard.psr_below
    if guard.min_track_record:
        gap = np.abs(w.sr - reference)
        with np.errstate(invalid="ignore", divide="ignore"):
            need = 1 + np.maximum(1 - w.skew * w.sr + (w.kurt - 1) / 4 * w.sr**2, 0.0) * (Z95 / gap) ** 2
            ok &= (gap > 0) & (w.n >= need)
    if guard.fdr is not None:
        p = (
            psr
            if guard.psr_below is not None
            else (1 - psr if guard.psr_above is not None else 2 * np.minimum(psr, 1 - psr))
        )
        days = rule.window.days
        looks = np.floor(np.maximum(1.0, rows / days)) if days else np.ones(len(rows))
        ok &= benjamini_hochberg(p, eligible, guard.fdr, eligible.sum(axis=1) * looks)
    evidence = {
        **w.metrics,
        "psr": psr,
        "se_sharpe": se * math.sqrt(TRADING_DAYS),
        "reference_sharpe": reference * math.sqrt(TRADING_DAYS),
    }
    target = np.full(w.sr.shape, np.nan)
    if rule.action.inverse_vol:
        usable = eligible & ok & (w.sd > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            inv = np.where(usable, 1 / (w.sd * prefix.panel.capital), np.nan)  # σ of daily PnL in currency
            target = np.where(usable.sum(axis=1, keepdims=True) >= 2, inv / _row_mean(inv, usable), np.nan)
    elif rule.action.tilt:
        post, m = shrink(w.sr, se, eligible)
        with np.errstate(invalid="ignore", divide="ignore"):
            desk_se = np.sqrt(_row_mean(se**2, eligible) / eligible.sum(axis=1, keepdims=True))
            gate = (m > 0) & (m > Z95 * desk_se)
            target = np.where(eligible, np.where(ok & gate, post / m, 1.0), np.nan)
        evidence |= {
            "shrunk_sharpe": post * math.sqrt(TRADING_DAYS),
            "desk_sharpe": np.broadcast_to(m * math.sqrt(TRADING_DAYS), w.sr.shape),
        }
    return Plan(rule, targets, rows, w, eligible, ok, target, psr, evidence)
