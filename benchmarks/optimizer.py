"""Closed-loop optimizer benchmark: the same simulated desk and seeds with the optimizer off and on.

Each run simulates `--days` days of the 31-strategy desk (one account) in hourly steps. With the
optimizer on, at every simulated midnight the rules of rules/optimization.yaml are evaluated over
each strategy's history up to that moment (nothing later), low-risk suggestions go through the
guardrails into a parameter store, and the simulator reads its sizes and on/off switches from that
store from then on. Markets and regime switches come from their own random generator, so both
runs of a seed see the same market. Reported per seed: portfolio Sharpe (daily, √252), net PnL,
max drawdown, changes applied / rolled back, and any parameter that left its bounds.

    .venv/bin/python benchmarks/optimizer.py [--seeds 1,2,...] [--days 120] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector.config import SimulatorSourceConfig  # noqa: E402
from collector.engine.engine import Engine  # noqa: E402
from collector.engine.series import Series  # noqa: E402
from collector.model import NS, Fill  # noqa: E402
from collector.optimize.allocation import allocation_suggestions  # noqa: E402
from collector.optimize.apply import Applier  # noqa: E402
from collector.optimize.evaluate import evaluate_changes  # noqa: E402
from collector.optimize.rules import OptimizationConfig, load_optimization  # noqa: E402
from collector.optimize.store import ALL_ACCOUNTS  # noqa: E402
from collector.optimize.suggest import DayStats, suggest  # noqa: E402
from collector.sources.simulator import Simulation, store_controls  # noqa: E402

START_NS = 1_700_006_400 * NS  # a UTC midnight
CAPITAL = 1_000_000.0


def _config(workdir: Path) -> OptimizationConfig:
    data = load_optimization(ROOT / "rules" / "optimization.yaml").model_dump(mode="json", by_alias=True)
    data["guardrails"]["kill_switch_file"] = str(workdir / "kill")
    data["store"] = {"path": str(workdir / "parameters.json"), "audit": str(workdir / "changes.jsonl")}
    return OptimizationConfig.model_validate(data)


def run(seed: int, days: int, optimize: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="stratmon-opt-") as tmp:
        config = _config(Path(tmp))
        applier = Applier(config) if optimize else None
        simulation = Simulation(SimulatorSourceConfig(type="simulator", seed=seed, accounts=1), START_NS)
        if applier is not None:
            simulation.controls = store_controls(applier.store)
        engine = Engine(default_capital=CAPITAL)
        histories: dict[str, list[DayStats]] = {}
        last: dict[str, tuple[float, int, int]] = {}  # strategy → equity, trades, wins at the last midnight
        portfolio_returns: list[float] = []
        portfolio_last = 0.0
        applied = rolled_back = 0
        for day in range(days):
            for _ in range(24):
                for event in simulation.step(3600.0):
                    if isinstance(event, Fill):
                        engine.on_fill(event)
                    else:
                        engine.on_mark(event)
            equity = engine.portfolio.equity
            portfolio_returns.append((equity - portfolio_last) / CAPITAL)
            portfolio_last = equity
            for key, series in engine.series.items():
                if key[0] == "strategy":
                    _close_day(histories, last, series, day, engine.capital_base(series))
            if applier is not None:
                now = START_NS + (day + 1) * 86_400 * NS
                verdicts = evaluate_changes(applier, histories, {}, now)
                rolled_back += sum(1 for v in verdicts if v.decision == "rolled back")
                proposals = suggest(config, histories, applier.store, applier.change_days())
                proposals += allocation_suggestions(config, histories, applier.store, seed=seed * 100_000 + day)
                for suggestion in proposals:
                    applied += applier.propose_suggestion(suggestion, now, ALL_ACCOUNTS).decision.applied
        violations = _bound_violations(config, applier) if applier is not None else 0
        equity_path = [0.0]
        for r in portfolio_returns:
            equity_path.append(equity_path[-1] + r * CAPITAL)
        peak, max_dd = 0.0, 0.0
        for value in equity_path:
            peak = max(peak, value)
            max_dd = max(max_dd, peak - value)
        sd = statistics.stdev(portfolio_returns)
        return {
            "sharpe": statistics.fmean(portfolio_returns) / sd * math.sqrt(252) if sd > 0 else 0.0,
            "net_pnl": engine.portfolio.equity,
            "max_drawdown": max_dd,
            "changes_applied": applied,
            "changes_rolled_back": rolled_back,
            "bound_violations": violations,
        }


def _close_day(
    histories: dict[str, list[DayStats]],
    last: dict[str, tuple[float, int, int]],
    series: Series,
    day: int,
    capital: float,
) -> None:
    equity, trades, wins = last.get(series.strategy, (0.0, 0, 0))
    drawdown = (series.peak - series.equity) / capital if capital else 0.0
    histories.setdefault(series.strategy, []).append(
        DayStats(
            day,
            (series.equity - equity) / capital,
            series.equity - equity,
            series.trades - trades,
            series.wins - wins,
            drawdown,
        )
    )
    last[series.strategy] = (series.equity, series.trades, series.wins)


def _bound_violations(config: OptimizationConfig, applier: Applier) -> int:
    """Parameters in the store outside their declared bounds (must be 0)."""
    count = 0
    for strategy, books in applier.store.document["parameters"].items():
        for values in books.values():
            for name, value in values.items():
                parameter = config.parameter(name, strategy)
                if parameter is None or (parameter.type != "bool" and not (parameter.min <= value <= parameter.max)):
                    count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="1,2,3,4,5,6,7,8,9,10")
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    per_seed = []
    for seed in seeds:
        off, on = run(seed, args.days, False), run(seed, args.days, True)
        uplift = (on["sharpe"] - off["sharpe"]) / abs(off["sharpe"]) if off["sharpe"] else float("nan")
        per_seed.append(
            {
                "seed": seed,
                "sharpe_off": off["sharpe"],
                "sharpe_on": on["sharpe"],
                "uplift": uplift,
                "net_pnl_off": off["net_pnl"],
                "net_pnl_on": on["net_pnl"],
                "max_drawdown_off": off["max_drawdown"],
                "max_drawdown_on": on["max_drawdown"],
                "changes_applied": on["changes_applied"],
                "changes_rolled_back": on["changes_rolled_back"],
                "bound_violations": on["bound_violations"],
            }
        )
        if not args.json:
            row = per_seed[-1]
            print(
                f"seed {seed:>3}: Sharpe {row['sharpe_off']:6.2f} → {row['sharpe_on']:6.2f} "
                f"(uplift {row['uplift']:+.0%}), PnL {row['net_pnl_off']:>11,.0f} → {row['net_pnl_on']:>11,.0f}, "
                f"max DD {row['max_drawdown_off']:>9,.0f} → {row['max_drawdown_on']:>9,.0f}, "
                f"changes {row['changes_applied']} (rolled back {row['changes_rolled_back']}), "
                f"bound violations {row['bound_violations']}"
            )
    median = {
        key: statistics.median(r[key] for r in per_seed)
        for key in ("sharpe_off", "sharpe_on", "uplift", "max_drawdown_off", "max_drawdown_on", "changes_applied")
    }
    spread = (min(r["uplift"] for r in per_seed), max(r["uplift"] for r in per_seed))
    report = {
        "days": args.days,
        "seeds": per_seed,
        "median": median,
        "uplift_range": spread,
        "bound_violations": sum(r["bound_violations"] for r in per_seed),
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"median Sharpe {median['sharpe_off']:.2f} → {median['sharpe_on']:.2f}, median uplift {median['uplift']:+.0%} "
        f"(range {spread[0]:+.0%} … {spread[1]:+.0%}); median max DD {median['max_drawdown_off']:,.0f} → "
        f"{median['max_drawdown_on']:,.0f}; bound violations {report['bound_violations']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
