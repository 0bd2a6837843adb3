"""Optimizer benchmark: paired walk-forward replay on simulated desks, their null twins and a placebo.

For each seed the simulator (common random numbers: off and on see the same trades, scaled) runs
`--days` days of the 31-strategy desk (one account, four-hour steps) at unit size, and its daily PnL
per strategy is replayed with `stratmon optimize replay`'s code: the configured rules of
rules/optimization.yaml decide each day from the days before it and scale the next day's PnL.
The same seed in the `null` calibration (no strategy has an edge; same volatility, regimes and
fills) measures what the rules do when there is nothing to find. Printed: the median over seeds
of ΔSharpe vs static 1/N for the optimizer and the inverse-volatility baseline with bootstrap 95%
CIs of the median, changes per strategy per 250 days in the null mode, and the placebo p-values.

    .venv/bin/python benchmarks/optimizer.py [--seeds 100] [--days 500] [--placebo 20] [--json]
    .venv/bin/python benchmarks/optimizer.py --power      # Monte Carlo power of a before/after test
    .venv/bin/python benchmarks/optimizer.py --csv desk.csv   # one simulated desk, for `optimize replay --pnl`
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector.config import SimulatorSourceConfig  # noqa: E402
from collector.model import NS, Fill  # noqa: E402
from collector.optimize.panel import DAY_NS, Panel, build, day_text  # noqa: E402
from collector.optimize.replay import replay  # noqa: E402
from collector.optimize.rules import OptimizationConfig, load_optimization  # noqa: E402
from collector.sources.simulator import Simulation  # noqa: E402

START_NS = 1_700_006_400 * NS  # a UTC midnight
STEP_S = 14_400.0  # four-hour steps: the calibration solves the edge for the trade rate they allow


def simulated_panel(seed: int, days: int, calibration: str = "realistic") -> Panel:
    """Daily PnL per strategy (cash + mark-to-market at each midnight) of one simulated account."""
    config = SimulatorSourceConfig(type="simulator", seed=seed, accounts=1, calibration=calibration)
    sim = Simulation(config, START_NS, step_s=STEP_S)
    names = [b.strategy for b in sim.books]
    cash = dict.fromkeys(names, 0.0)
    trades = dict.fromkeys(names, 0.0)
    wins = dict.fromkeys(names, 0.0)
    entry: dict[str, tuple[int, float]] = {}  # open order → (step it opened, cash it moved)
    last = dict.fromkeys(names, 0.0)
    rows: list[tuple[int, str, str, float, float, float]] = []
    steps_per_day = int(86_400 / STEP_S)
    for day in range(days):
        t_before, w_before = dict(trades), dict(wins)
        for step in range(day * steps_per_day, (day + 1) * steps_per_day):
            for event in sim.step(STEP_S):
                if not isinstance(event, Fill):
                    continue
                sign = 1.0 if event.side == "buy" else -1.0
                flow = -sign * event.qty * event.price * (event.multiplier or 1.0) - (event.fee or 0.0)
                cash[event.strategy] += flow
                order = event.order_id or ""
                opened, moved = entry.get(order, (step, 0.0))
                if opened == step:  # an entry (its parts all come in the step it opened)
                    entry[order] = (step, moved + flow)
                else:  # the exit, in a later step
                    del entry[order]
                    trades[event.strategy] += 1
                    wins[event.strategy] += moved + flow > 0
        equity = dict(cash)
        for book in sim.books:
            for sym, position in book.open.items():
                multiplier = sim.markets[sym][3]
                equity[book.strategy] += position.direction * position.qty * sim.prices[sym] * multiplier
        epoch_day = START_NS // DAY_NS + day
        for name in names:
            rows.append(
                (
                    epoch_day,
                    name,
                    "*",
                    equity[name] - last[name],
                    trades[name] - t_before[name],
                    wins[name] - w_before[name],
                )
            )
            last[name] = equity[name]
    return build(rows)


def write_csv(panel: Panel, path: Path) -> None:
    """The panel in `stratmon optimize replay --pnl`'s format."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["date", "strategy", "pnl", "trades", "wins"])
        for i, day in enumerate(panel.days):
            for j, name in enumerate(panel.strategies):
                out.writerow(
                    [
                        day_text(int(day)),
                        name,
                        repr(float(panel.pnl[i, j])),
                        int(panel.trades[i, j]),
                        int(panel.wins[i, j]),
                    ]
                )


def _config() -> OptimizationConfig:
    return load_optimization(ROOT / "rules" / "optimization.yaml")


def one_seed(seed: int, days: int, warmup: int, placebo: int) -> dict[str, Any]:
    config = _config()
    out: dict[str, Any] = {"seed": seed}
    for calibration in ("realistic", "null"):
        panel = simulated_panel(seed, days, calibration)
        result = replay(config, panel, warmup=warmup, placebo=placebo, seed=seed)
        methods = {m.name: m for m in result.methods}
        static = methods["static (1/N)"]
        strategy_sharpes = [
            float(np.mean(c) / np.std(c, ddof=1) * math.sqrt(252)) for c in np.nan_to_num(panel.pnl).T if np.std(c) > 0
        ]
        out[calibration] = {
            "static_sharpe": static.sharpe,
            "optimizer_delta": methods["optimizer"].delta,
            "optimizer_ci": [methods["optimizer"].low, methods["optimizer"].high],
            "inverse_vol_delta": methods["inverse volatility"].delta,
            "optimizer_minus_inverse_vol": methods["optimizer"].delta - methods["inverse volatility"].delta,
            "max_dd_static": static.max_drawdown,
            "max_dd_optimizer": methods["optimizer"].max_drawdown,
            "changes": methods["optimizer"].applied,
            "changes_per_strategy_250d": methods["optimizer"].applied / len(panel.strategies) / (days - warmup) * 250,
            "rolled_back": methods["optimizer"].rolled_back,
            "placebo_p": result.placebo.get("p_value"),
            "supported": result.supported,
            "strategy_sharpe_median": float(np.median(strategy_sharpes)) if strategy_sharpes else 0.0,
            "bound_violations": _violations(config, result.run.changes),
        }
    return out


def _violations(config: OptimizationConfig, changes: list[Any]) -> int:
    count = 0
    for change in changes:
        parameter = config.parameter(change.param, "x")
        if parameter is not None and parameter.min is not None and parameter.max is not None:
            count += not parameter.min <= float(change.new) <= parameter.max
    return count


def median_ci(values: list[float], reps: int = 5000, seed: int = 0) -> tuple[float, float, float]:
    """Median and its percentile-bootstrap 95% interval (seeds are independent)."""
    x = np.array(values)
    rng = np.random.default_rng(seed)
    medians = np.median(x[rng.integers(0, len(x), size=(reps, len(x)))], axis=1)
    return float(np.median(x)), float(np.quantile(medians, 0.025)), float(np.quantile(medians, 0.975))


def power_table(days: int = 10, reps: int = 4000) -> list[dict[str, float]]:
    """Power of the one-sided before/after Welch test (p < 0.10, `days` vs `days`) against true effects.

    Daily returns N(μ, 1) with annualized Sharpe SR before the change; after it the Sharpe changes
    by ΔSR (annualized). Each cell: the fraction of `reps` worlds where the test calls it harmful.
    """
    rng = np.random.default_rng(1)
    rows = []
    for before_sr in (1.0, 2.0):
        for delta in (0.0, -1.0, -2.0, -4.0, 1.0):
            mu_b, mu_a = before_sr / math.sqrt(252), (before_sr + delta) / math.sqrt(252)
            b = rng.normal(mu_b, 1.0, (reps, days))
            a = rng.normal(mu_a, 1.0, (reps, days))
            scale = np.sqrt(b.var(axis=1, ddof=1) / days + a.var(axis=1, ddof=1) / days)
            t = (a.mean(axis=1) - b.mean(axis=1)) / scale
            p = np.vectorize(NormalDist().cdf)(t)
            rows.append({"sharpe_before": before_sr, "delta_sharpe": delta, "rollback_rate": float((p < 0.10).mean())})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds (from --first)")
    parser.add_argument("--first", type=int, default=1000)
    parser.add_argument("--days", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=120)
    parser.add_argument("--placebo", type=int, default=20, help="placebo copies per realistic seed")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--power", action="store_true", help="print the before/after test's power table and exit")
    parser.add_argument(
        "--csv", type=Path, help="write seed --first's daily PnL (date,strategy,pnl,trades,wins) and exit"
    )
    args = parser.parse_args()
    logging.disable(logging.INFO)
    if args.csv:
        write_csv(simulated_panel(args.first, args.days), args.csv)
        return 0
    if args.power:
        for row in power_table():
            print(
                f"Sharpe before {row['sharpe_before']:.1f}, ΔSharpe {row['delta_sharpe']:+.1f}: "
                f"rolled back {row['rollback_rate']:.0%}"
            )
        return 0
    started = time.perf_counter()
    seeds = list(range(args.first, args.first + args.seeds))
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        per_seed = list(
            pool.map(one_seed, seeds, [args.days] * len(seeds), [args.warmup] * len(seeds), [args.placebo] * len(seeds))
        )
    real = [s["realistic"] for s in per_seed]
    null = [s["null"] for s in per_seed]
    report = {
        "seeds": len(seeds),
        "days": args.days,
        "warmup": args.warmup,
        "static_sharpe_median": float(np.median([r["static_sharpe"] for r in real])),
        "strategy_sharpe_median": float(np.median([r["strategy_sharpe_median"] for r in real])),
        "optimizer_delta": median_ci([r["optimizer_delta"] for r in real]),
        "inverse_vol_delta": median_ci([r["inverse_vol_delta"] for r in real]),
        "optimizer_minus_inverse_vol": median_ci([r["optimizer_minus_inverse_vol"] for r in real]),
        "optimizer_negative_seeds": sum(r["optimizer_delta"] < 0 for r in real),
        "max_dd_worse_seeds": sum(r["max_dd_optimizer"] > r["max_dd_static"] for r in real),
        "null_delta": median_ci([r["optimizer_delta"] for r in null]),
        "null_changes_per_strategy_250d": float(np.mean([r["changes_per_strategy_250d"] for r in null])),
        "null_changes_per_strategy_250d_max": float(np.max([r["changes_per_strategy_250d"] for r in null])),
        "real_changes_per_strategy_250d": float(np.mean([r["changes_per_strategy_250d"] for r in real])),
        "rolled_back": sum(r["rolled_back"] for r in real + null),
        "placebo_p_below_0_05": sum((r["placebo_p"] or 1) < 0.05 for r in real),
        "null_placebo_p_below_0_05": sum((r["placebo_p"] or 1) < 0.05 for r in null),
        "null_supported": sum(r["supported"] for r in null),
        "real_supported": sum(r["supported"] for r in real),
        "bound_violations": sum(r["bound_violations"] for r in real + null),
        "seconds": time.perf_counter() - started,
        "per_seed": per_seed,
    }
    if args.json:
        print(json.dumps(report))
        return 0

    def fmt(ci: tuple[float, float, float]) -> str:
        return f"{ci[0]:+.3f} [95% CI {ci[1]:+.3f}, {ci[2]:+.3f}]"

    print(f"{len(seeds)} seeds × {args.days} days (warmup {args.warmup}), {report['seconds']:.0f} s")
    print(
        f"realistic desk: static 1/N Sharpe median {report['static_sharpe_median']:.2f} "
        f"(strategies' median {report['strategy_sharpe_median']:.2f})"
    )
    print(
        f"  optimizer ΔSharpe vs 1/N, median over seeds: {fmt(report['optimizer_delta'])}; "
        f"negative on {report['optimizer_negative_seeds']} seeds; max drawdown worse on "
        f"{report['max_dd_worse_seeds']}"
    )
    print(f"  inverse-volatility baseline: {fmt(report['inverse_vol_delta'])}")
    print(f"  optimizer − inverse volatility: {fmt(report['optimizer_minus_inverse_vol'])}")
    print(
        f"  placebo p < 0.05 on {report['placebo_p_below_0_05']} of {len(seeds)} seeds "
        f"({args.placebo} copies each); changes per strategy per 250 days "
        f"{report['real_changes_per_strategy_250d']:.2f}"
    )
    print(
        f"  replay verdict 'supported' on {report['real_supported']} realistic and {report['null_supported']} null"
        f" desks; null placebo p < 0.05 on {report['null_placebo_p_below_0_05']} (about 5% expected)"
    )
    print(
        f"null desk: optimizer ΔSharpe {fmt(report['null_delta'])}; changes per strategy per 250 days "
        f"{report['null_changes_per_strategy_250d']:.2f} (max over seeds "
        f"{report['null_changes_per_strategy_250d_max']:.2f})"
    )
    print(
        f"rules disabled / changes rolled back: {report['rolled_back']}; bound violations {report['bound_violations']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
