"""Learning allocation: capital weights across strategies by Thompson sampling.

Each strategy's mean daily return gets a normal posterior (a zero-mean prior worth `PRIOR_DAYS`
days, the sample variance as known variance): mean_post = Σr / (n + n₀), sd_post = σ / √(n + n₀).
One draw per strategy; weights ∝ max(draw, 0), normalized so that the average weight is 1 (1 =
equal allocation), then clamped to the `allocation` parameter's bounds. Sampling rather than
taking the best mean keeps exploring strategies whose record is short. The weights become
suggestions for the `allocation` parameter, applied through the same guardrails (bounds, max
step, cooldown, budget, risk).
"""

from __future__ import annotations

import math
import random
import statistics

from collector.optimize.rules import OptimizationConfig
from collector.optimize.store import ALL_ACCOUNTS, ParameterStore
from collector.optimize.suggest import DayStats, Suggestion

PRIOR_DAYS = 10.0
PARAM = "allocation"


def thompson_weights(returns: dict[str, list[float]], rng: random.Random) -> dict[str, float]:
    """Weights (mean 1) from one posterior draw per strategy; all-zero draws give equal weights."""
    draws = {}
    for name, series in returns.items():
        n = len(series)
        sigma = statistics.stdev(series) if n >= 2 else 0.01
        mean = math.fsum(series) / (n + PRIOR_DAYS)
        draws[name] = max(0.0, rng.gauss(mean, sigma / math.sqrt(n + PRIOR_DAYS)))
    total = sum(draws.values())
    if total <= 0:
        return dict.fromkeys(returns, 1.0)
    return {name: draw * len(draws) / total for name, draw in draws.items()}


def allocation_suggestions(
    config: OptimizationConfig, histories: dict[str, list[DayStats]], store: ParameterStore, seed: int
) -> list[Suggestion]:
    rules = [r for r in config.rules if r.action.reallocate]
    if not rules:
        return []
    rule = rules[0]
    window = rule.window.days or 60
    returns = {
        name: [d.ret for d in history[-window:]]
        for name, history in histories.items()
        if config.parameter(PARAM, name) is not None and sum(d.trades for d in history[-window:]) > 0
    }
    if len(returns) < 2:
        return []
    weights = thompson_weights(returns, random.Random(seed))
    out = []
    for name, weight in sorted(weights.items()):
        parameter = config.parameter(PARAM, name)
        assert parameter is not None and parameter.min is not None and parameter.max is not None
        target = min(max(weight, parameter.min), parameter.max)
        current = store.get(name, ALL_ACCOUNTS, PARAM, parameter.default)
        if abs(target - float(current)) < 1e-9:
            continue
        out.append(
            Suggestion(
                rule.name,
                name,
                ALL_ACCOUNTS,
                PARAM,
                current,
                target,
                f"Thompson-sampled weight {weight:.2f} from {len(returns[name])} days",
                0.5,
                rule.risk,
                {"weight": weight, "days": float(len(returns[name])), "until_day": histories[name][-1].day},
            )
        )
    return out
