"""`stratmon optimize replay`: where the history comes from, and how the result is shown."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from collector.config import Settings
from collector.errors import UserError
from collector.optimize.panel import DAY_NS, Panel, build, day_text, from_csv, from_fills
from collector.optimize.replay import Replay
from collector.store.connect import open_reader


def panel_from_influx(settings: Settings, level: str = "book") -> Panel:
    """`perf_1d` of every book: pnl, trades, wins per day (capital = pnl ÷ return where both are known)."""
    reader = open_reader(settings)
    try:
        frame = reader.query(
            'SELECT "pnl", "return", "trades", "wins" FROM "perf_1d" '
            f'WHERE "level" = \'{level}\' GROUP BY "strategy", "account"'
        )
    finally:
        reader.close()
    if frame.empty:
        raise UserError(f"perf_1d in {settings.influx.database} has no {level} rows; run `stratmon rollup` first")
    rows = []
    ratios: dict[tuple[str, str], list[float]] = {}
    for when, row in frame.iterrows():
        day = int(pd.Timestamp(when).value) // DAY_NS  # type: ignore[arg-type]
        pnl = _float(row.get("pnl"))
        ret = _float(row.get("return"))
        key = (str(row["strategy"]), str(row["account"]))
        if pnl and ret:
            ratios.setdefault(key, []).append(pnl / ret)
        rows.append((day, key[0], key[1], pnl, _float(row.get("trades")), _float(row.get("wins"))))
    capital: dict[str, float] = {}
    for (strategy, _), values in ratios.items():
        capital[strategy] = capital.get(strategy, 0.0) + float(np.median(values))
    return build(rows, capital or None)


def _float(value: object) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return out if math.isfinite(out) else 0.0


def load_panel(settings: Settings, pnl: Path | None, fills: list[str] | None, influx: bool) -> Panel:
    chosen = [name for name, given in (("--pnl", pnl), ("--fills", fills), ("--influx", influx)) if given]
    if len(chosen) != 1:
        raise UserError("optimize replay: give exactly one of --pnl FILE.csv, --fills FILES..., --influx")
    if pnl is not None:
        return from_csv(pnl)
    if fills:
        from collector.report import new_engine, read_events

        events, intake, _, _ = read_events(settings, fills)
        if intake.stats.accepted == 0:
            raise UserError(f"no fill in {', '.join(fills)} was accepted ({intake.stats.rejected} rejected)")
        return from_fills(events, new_engine(settings))
    return panel_from_influx(settings)


def write_decisions(path: Path, panel: Panel, result: Replay) -> None:
    """date,strategy,account,multiplier: the effective multiplier of every strategy (and account) each day."""
    m = result.run.multipliers
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["date", "strategy", "account", "multiplier"])
        for i, day in enumerate(panel.days):
            text = day_text(int(day))
            for j, strategy in enumerate(panel.strategies):
                for account in sorted(panel.accounts.get(strategy, {"*": np.empty(0)})):
                    out.writerow([text, strategy, account, repr(float(m[i, j]))])


def render(result: Replay, console: Console) -> None:
    table = Table(
        title=f"walk-forward replay: {result.strategies} strategies × {result.days} days "
        f"(decisions from day {result.warmup + 1})"
    )
    for column in ("method", "Sharpe", "ΔSharpe vs static [95% CI]", "max drawdown", "turnover/day", "changes"):
        table.add_column(column)
    for m in result.methods:
        delta = "—" if m.name.startswith("static") else f"{m.delta:+.2f} [{m.low:+.2f}, {m.high:+.2f}]"
        changes = f"{m.applied} applied, {m.rolled_back} rolled back" if m.name == "optimizer" else ""
        table.add_row(
            m.name,
            f"{m.sharpe:.2f}",
            delta,
            f"{m.max_drawdown:,.0f} ({m.max_drawdown_pct:.2%})",
            f"{m.turnover:.3f}",
            changes,
        )
    console.print(table)
    p = result.placebo
    if p.get("copies"):
        console.print(
            f"placebo ({p['copies']:.0f} demeaned, block-permuted copies): ΔSharpe by chance "
            f"{p['low']:+.2f} … {p['high']:+.2f} (median {p['median']:+.2f}); p-value of the real one "
            f"{p['p_value']:.3f}"
        )
    rules = Table(title="each rule against its exact counterfactual (same days, without its changes)")
    for column in ("rule", "risk", "changes", "ΔSharpe [95% CI]", "ΔPnL"):
        rules.add_column(column)
    for row in result.rules:
        if "delta_sharpe" in row:
            ci = f"{row['delta_sharpe']:+.2f} [{row['low']:+.2f}, {row['high']:+.2f}]"
            rules.add_row(row["rule"], row["risk"], str(row["changes"]), ci, f"{row['pnl']:,.0f}")
        else:
            note = f"{result.proposals.get(row['rule'], 0)} proposals (not applied)" if row["risk"] != "low" else ""
            rules.add_row(row["rule"], row["risk"], str(row["changes"]), note, "")
    console.print(rules)
    for param, count in result.not_replayable.items():
        console.print(f"not replayable from PnL: {count} changes of {param} (listed, not applied)")
    for rule, day in result.disabled.items():
        console.print(f"rule {rule} was disabled on {day}: its pooled contribution was negative at 95%")
    console.print(f"verdict: {result.verdict}")
