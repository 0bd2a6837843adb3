"""The optimization run (`stratmon optimize`, and the `optimize` job in `stratmon run`).

Reads each strategy's daily history from the `perf_1d` rollups (and its daily drawdown from
`perf`), evaluates rules/optimization.yaml, sends suggestions through the guardrails, and writes
a `suggestions` point per suggestion with what became of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from collector.config import Settings
from collector.errors import UserError
from collector.model import NS
from collector.optimize.allocation import allocation_suggestions
from collector.optimize.apply import Applier, Outcome
from collector.optimize.evaluate import evaluate_changes, multiplier_path
from collector.optimize.guardrails import Decision
from collector.optimize.rules import OptimizationConfig, load_optimization
from collector.optimize.suggest import DayStats, Suggestion, suggest
from collector.store.connect import open_reader
from collector.store.lineproto import point
from collector.store.reader import QueryError, Reader
from collector.store.writer import Writer

DAY_NS = 86_400 * NS


@dataclass
class Result:
    suggestion: Suggestion
    outcome: Outcome

    @property
    def status(self) -> str:
        decision = self.outcome.decision
        if decision.applied:
            return "applied"
        if decision.dry_run:
            return "dry-run"
        return "proposed" if self.suggestion.risk != "low" else "refused"


def load_config(settings: Settings, dry_run: bool = False) -> OptimizationConfig:
    path = Path(settings.optimize.rules)
    if not path.is_file():
        raise UserError(f"optimize.rules: {path} not found; point it at your rules or set optimize.enabled: false")
    config = load_optimization(path)
    if dry_run:
        config.guardrails.dry_run = True
    return config


def _frame(reader: Reader, statement: str) -> pd.DataFrame:
    try:
        return reader.query(statement)
    except QueryError as exc:
        if "database not found" in str(exc):
            return pd.DataFrame()
        raise


def histories_from_influx(reader: Reader, days: int, level: str = "strategy") -> dict[str, list[DayStats]]:
    """Daily history per strategy (level strategy) or per "strategy|account" (level book)."""
    daily = _frame(
        reader,
        'SELECT "return", "pnl", "trades", "wins" FROM "perf_1d" '
        f'WHERE "level" = \'{level}\' AND time > now() - {days}d GROUP BY "strategy", "account"',
    )
    drawdowns = _frame(
        reader,
        'SELECT last("drawdown_pct") AS "dd" FROM "perf" '
        f'WHERE "level" = \'strategy\' AND time > now() - {days}d GROUP BY time(1d), "strategy" fill(none)',
    )
    dd: dict[tuple[str, int], float] = {}
    if not drawdowns.empty:
        for when, row in drawdowns.iterrows():
            dd[(str(row["strategy"]), int(pd.Timestamp(when).value) // DAY_NS)] = float(row["dd"])  # type: ignore[arg-type]
    out: dict[str, list[DayStats]] = {}
    if daily.empty:
        return out
    for when, row in daily.sort_index().iterrows():
        day = int(pd.Timestamp(when).value) // DAY_NS  # type: ignore[arg-type]
        strategy = str(row["strategy"]) if level == "strategy" else f"{row['strategy']}|{row['account']}"
        values = [row.get(name) for name in ("return", "pnl", "trades", "wins")]
        ret, pnl, trades, wins = (0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values)
        out.setdefault(strategy, []).append(
            DayStats(day, float(ret), float(pnl), int(trades), int(wins), dd.get((strategy, day), 0.0))
        )
    return out


def optimize(settings: Settings, writer: Writer, dry_run: bool = False, lookback_days: int = 400) -> list[Result]:
    config = load_config(settings, dry_run)
    reader = open_reader(settings)
    try:
        histories = histories_from_influx(reader, lookback_days)
        books = histories_from_influx(reader, lookback_days, level="book")
    finally:
        reader.close()
    by_book: dict[tuple[str, str], list[DayStats]] = {}
    for key, history in books.items():
        strategy, _, account = key.partition("|")
        by_book[(strategy, account)] = history
    applier = Applier(config, writer)
    now = max((h[-1].day + 1 for h in histories.values() if h), default=0) * DAY_NS
    histories = unit_histories(applier, histories)
    results = []
    for verdict in evaluate_changes(applier, histories, by_book, now):
        if verdict.decision == "disabled":
            results.append(disabled_result(verdict.rule, verdict.delta_sharpe))
            writer.write(suggestion_line(results[-1], now))
    accounts: dict[str, list[str]] = {}
    for strategy, account in sorted(by_book):
        accounts.setdefault(strategy, []).append(account)
    disabled = applier.disabled_rules()
    config = config.model_copy(update={"rules": [r for r in config.rules if r.name not in disabled]})
    proposals = suggest(config, histories, applier.store, applier.change_days())
    proposals += allocation_suggestions(config, histories, applier.store, seed=now // DAY_NS)
    for suggestion in proposals:
        canary = config.guardrails.canary.enabled and len(accounts.get(suggestion.strategy, [])) > 1
        target = accounts[suggestion.strategy][0] if canary and suggestion.param != "enabled" else None
        outcome = applier.propose_suggestion(suggestion, now, target)
        result = Result(suggestion, outcome)
        results.append(result)
        writer.write(suggestion_line(result, now))
    writer.flush()
    return results


def unit_histories(applier: Applier, histories: dict[str, list[DayStats]]) -> dict[str, list[DayStats]]:
    """PnL and returns at the default size: each day divided by the multiplier the audit says was in
    force (paused days are left out), so the rules judge the strategy, not the sizes they chose."""
    records = applier.audit.records()
    out = {}
    for strategy, history in histories.items():
        days = np.array([d.day for d in history], dtype=np.int64)
        factors = multiplier_path(applier, records, strategy, days)
        out[strategy] = [
            replace(d, ret=d.ret / f, pnl=d.pnl / f) for d, f in zip(history, factors, strict=True) if f > 0
        ]
    return out


def disabled_result(rule: str, ci: tuple[float, float, float] | None) -> Result:
    """A disabled rule as a medium-risk `suggestions` point, so the `proposal` alert tells people."""
    text = f"rule {rule} disabled: its changes lowered the portfolio Sharpe" + (
        f" (ΔSharpe {ci[0]:+.2f}, 95% CI {ci[1]:+.2f} … {ci[2]:+.2f})" if ci else ""
    )
    suggestion = Suggestion(rule, "*", "*", "rule", True, False, text, 0.95, "medium")
    return Result(suggestion, Outcome(Decision(False, False, "disabled automatically; for a person to review"), None))


def suggestion_line(result: Result, ts_ns: int) -> str:
    s = result.suggestion
    tags = {
        "rule": s.rule,
        "level": "strategy",
        "account": s.account if s.account != "*" else "_all",
        "strategy": s.strategy if s.strategy != "*" else "_all",
        "risk": s.risk,
        "status": result.status,
    }
    fields: dict[str, float | str] = {
        "param": s.param,
        "old": float(s.old),
        "new": float(result.outcome.decision.value if result.outcome.decision.value is not None else s.new),
        "rationale": s.rationale + (f" [{result.outcome.decision.reason}]" if result.outcome.decision.reason else ""),
        "confidence": float(s.confidence),
        "suggestion_id": s.id,
    }
    return point("suggestions", tags, fields, ts_ns)
