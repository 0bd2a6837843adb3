"""`stratmon optimize replay`: walk-forward on a desk's own history, recomputable, no look-ahead, no free lunch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from collector.config import Settings
from collector.errors import UserError
from collector.model import NS
from collector.optimize.panel import Panel, build, day_text, from_csv
from collector.optimize.replay import (
    Change,
    placebo_panel,
    replay,
    rule_counterfactual,
    walk_forward,
)
from collector.optimize.replay_output import load_panel
from collector.optimize.rules import load_optimization
from collector.store.connect import open_writer
from collector.store.lineproto import point

ROOT = Path(__file__).resolve().parents[2]
DAY0 = 19_000
CLI = [sys.executable, "-m", "collector"]
REPLAY = [*CLI, "optimize", "replay", "--rules", str(ROOT / "rules" / "optimization.yaml")]


def _desk(seed: int, days: int = 300, edges: bool = True) -> Panel:
    """Strategies with different volatilities (and, with `edges`, different Sharpes), independent days."""
    rng = np.random.default_rng(seed)
    names = [f"s{j:02d}" for j in range(10)]
    vols = rng.uniform(500, 5000, len(names))
    sharpes = rng.uniform(0.5, 2.5, len(names)) if edges else np.zeros(len(names))
    rows = []
    for j, name in enumerate(names):
        pnl = rng.normal(sharpes[j] / np.sqrt(252) * vols[j], vols[j], days)
        rows += [(DAY0 + i, name, "*", float(pnl[i]), 10.0, 5.0) for i in range(days)]
    return build(rows)


def _csv(panel: Panel, path: Path) -> Path:
    rows = [
        {"date": day_text(int(d)), "strategy": s, "pnl": repr(float(panel.pnl[i, j])), "extra": "ignored"}
        for i, d in enumerate(panel.days)
        for j, s in enumerate(panel.strategies)
    ]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_replay_cli_is_recomputable_from_its_decisions(tmp_path: Path) -> None:
    history = _csv(_desk(1), tmp_path / "daily.csv")
    decisions = tmp_path / "decisions.csv"
    done = subprocess.run(
        [*REPLAY, "--pnl", str(history), "--placebo", "10", "--json", "--decisions", str(decisions)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    methods = {m["name"]: m for m in result["methods"]}
    assert set(methods) == {"static (1/N)", "inverse volatility", "optimizer"}
    assert result["placebo"]["copies"] == 10 and 0 < result["placebo"]["p_value"] <= 1
    assert result["verdict"].split(":")[0] in ("supported", "not supported", "nothing to do")
    # an independent recomputation: join the input with the decisions, scale, sum, Sharpe
    data = pd.read_csv(history).merge(pd.read_csv(decisions), on=["date", "strategy"])
    data["scaled"] = data["pnl"] * data["multiplier"]
    daily = data.groupby("date")[["scaled", "pnl"]].sum().sort_index().iloc[result["warmup"] :]

    def sharpe(x: pd.Series) -> float:
        return float(x.mean() / x.std(ddof=1) * np.sqrt(252))

    assert abs(sharpe(daily["scaled"]) - methods["optimizer"]["sharpe"]) < 1e-9
    assert abs(sharpe(daily["pnl"]) - methods["static (1/N)"]["sharpe"]) < 1e-9
    assert methods["optimizer"]["low"] <= methods["optimizer"]["delta"] <= methods["optimizer"]["high"]
    assert len(result["changes"]) == methods["optimizer"]["applied"] + methods["optimizer"]["rolled_back"]
    assert {c["rule"] for c in result["changes"]} <= {"volatility-target", "size-by-evidence"} | {
        f"rollback:{r}" for r in ("volatility-target", "size-by-evidence")
    }
    table = subprocess.run(
        [*REPLAY, "--pnl", str(history), "--placebo", "5"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert table.returncode == 0 and "inverse volatility" in table.stdout and "verdict:" in table.stdout


def test_decisions_for_past_days_do_not_change_when_days_are_appended() -> None:
    config = load_optimization(ROOT / "rules" / "optimization.yaml")
    panel = _desk(2, days=320)
    full = walk_forward(config, panel, warmup=120).multipliers
    for rows in (150, 201, 260):
        head = walk_forward(config, panel.head(rows), warmup=120).multipliers
        assert np.array_equal(head, full[:rows])


def test_no_decision_leaves_the_yaml_bounds() -> None:
    config = load_optimization(ROOT / "rules" / "optimization.yaml")
    run = walk_forward(config, _desk(3, days=400), warmup=120)
    assert run.changes
    for change in run.changes:
        parameter = config.parameter(change.param, "s00")
        assert parameter is not None and parameter.min is not None and parameter.max is not None
        assert parameter.min <= float(change.new) <= parameter.max
        assert abs(float(change.new) - float(change.old)) <= parameter.max_step + 1e-12  # type: ignore[operator]
    size, alloc = config.parameter("size_multiplier", "s00"), config.parameter("allocation", "s00")
    assert size is not None and alloc is not None
    assert run.multipliers.min() >= size.min * alloc.min - 1e-12  # type: ignore[operator]
    assert run.multipliers.max() <= size.max * alloc.max + 1e-12  # type: ignore[operator]


def test_no_edge_no_evidence_changes() -> None:
    """Pure noise: the evidence rule never moves a size, and equal-risk allocation settles once."""
    config = load_optimization(ROOT / "rules" / "optimization.yaml")
    panel = _desk(4, days=500, edges=False)
    run = walk_forward(config, panel, warmup=120)
    assert not [c for c in run.changes if c.rule == "size-by-evidence"]
    per_strategy_250d = len(run.changes) / len(panel.strategies) / (500 - 120) * 250
    assert per_strategy_250d <= 1.0


def test_real_differences_in_edge_are_sized() -> None:
    config = load_optimization(ROOT / "rules" / "optimization.yaml")
    rng = np.random.default_rng(5)
    sharpes = [9.0, 9.0, -2.0, -2.0, 3.0, 3.0, 3.0, 3.0]  # only large gaps survive 120 days, FDR and MinTRL
    rows = [
        (DAY0 + i, f"s{j}", "*", float(x), 10.0, 5.0)
        for j, sr in enumerate(sharpes)
        for i, x in enumerate(rng.normal(sr / np.sqrt(252), 1.0, 400))
    ]
    run = walk_forward(config, build(rows), warmup=120)
    sizes = {c.strategy: float(c.new) for c in run.changes if c.param == "size_multiplier"}
    assert sizes.get(0, 1.0) > 1 or sizes.get(1, 1.0) > 1
    assert sizes.get(2, 1.0) < 1 or sizes.get(3, 1.0) < 1


def test_rule_counterfactual_is_the_same_days_without_the_rules_steps() -> None:
    pnl = np.array([[1.0, 2.0], [3.0, -1.0], [2.0, 2.0], [-1.0, 4.0]])
    panel = Panel(np.arange(4, dtype=np.int64), ["a", "b"], pnl, np.zeros_like(pnl), np.zeros_like(pnl), np.ones(2))
    m = np.array([[1.0, 1.0], [1.5, 1.0], [1.5, 0.5], [2.0, 0.5]])
    changes = [
        Change(1, 0, "size_multiplier", 1.0, 1.5, "grow"),
        Change(2, 1, "size_multiplier", 1.0, 0.5, "cut"),
        Change(3, 0, "size_multiplier", 1.5, 2.0, "grow"),
    ]
    without_grow = rule_counterfactual(panel, m, changes, "grow", 4)
    assert np.allclose(without_grow, [1 + 2, 3 - 1, 2 + 0.5 * 2, -1 + 0.5 * 4])
    without_cut = rule_counterfactual(panel, m, changes, "cut", 4)
    assert np.allclose(without_cut, [1 + 2, 1.5 * 3 - 1, 1.5 * 2 + 2, 2 * -1 + 4])


def test_placebo_removes_the_edge_and_keeps_whole_days() -> None:
    panel = _desk(6, days=200)
    centred = panel.pnl - np.nanmean(panel.pnl, axis=0)
    rows = {tuple(r) for r in np.round(centred, 6)}
    rng = np.random.default_rng(0)
    means = []
    for _ in range(50):
        copy = placebo_panel(panel, rng)
        assert all(tuple(r) in rows for r in np.round(copy.pnl, 6))  # whole days: strategies stay aligned
        means.append(np.nanmean(copy.pnl, axis=0))
    spread = np.std(means, axis=0)
    assert np.all(spread > 0)  # realized means vary by chance, as in a real history
    assert np.all(np.abs(np.mean(means, axis=0)) < spread)  # around no edge at all


def test_a_placebo_is_calibrated_on_a_desk_without_edge() -> None:
    """On pure-noise desks the replay's placebo p-value is not stuck at either end."""
    config = load_optimization(ROOT / "rules" / "optimization.yaml")
    p = [
        replay(config, _desk(100 + seed, days=200, edges=False), warmup=100, placebo=9, seed=seed).placebo["p_value"]
        for seed in range(6)
    ]
    assert 0.15 < float(np.mean(p)) < 0.85 and sum(x <= 0.1 for x in p) <= 2


def test_history_file_mistakes_name_file_and_line(tmp_path: Path) -> None:
    cases = {
        "date,strategy\n2024-01-02,a\n": "missing column(s) pnl",
        "date,strategy,pnl\n2024-13-02,a,1\n": ":2: date '2024-13-02'",
        "date,strategy,pnl\n2024-01-02,a,1\n2024-01-02,a,2\n": ":3: a second row for a/*",
        "date,strategy,pnl\n2024-01-02,a,lots\n": ":2: pnl 'lots' is not a number",
        "date,strategy,pnl\n2024-01-02,a,inf\n": ":2: pnl 'inf' is not finite",
    }
    for text, expected in cases.items():
        path = tmp_path / "h.csv"
        path.write_text(text)
        with pytest.raises(UserError, match=expected.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
            from_csv(path)
    (tmp_path / "latin.csv").write_bytes(b"date,strategy,pnl\n2024-01-02,caf\xe9,1\n")
    with pytest.raises(UserError, match="not UTF-8"):
        from_csv(tmp_path / "latin.csv")
    (tmp_path / "compact.csv").write_text("date,strategy,pnl\n20240102,a,1\n")
    with pytest.raises(UserError, match="expected YYYY-MM-DD"):
        from_csv(tmp_path / "compact.csv")
    (tmp_path / "wins.csv").write_text("date,strategy,pnl,trades,wins\n2024-01-02,a,1,3,4\n")
    with pytest.raises(UserError, match="0 ≤ wins ≤ trades"):
        from_csv(tmp_path / "wins.csv")
    books = "date,strategy,account,pnl,capital\n" + "".join(
        f"2024-01-{d:02d},a,{acc},1,{cap}\n" for d in range(2, 9) for acc, cap in (("x", 6e5), ("y", 4e5))
    )
    (tmp_path / "books.csv").write_text(books)
    assert from_csv(tmp_path / "books.csv").capital.tolist() == [1e6]  # per book, summed over accounts, not days
    (tmp_path / "short.csv").write_text("\ufeffdate,strategy,pnl\n2024-01-02,a,1\n2024-01-03,a,2\n")
    assert from_csv(tmp_path / "short.csv").pnl.shape == (2, 1)  # a UTF-8 BOM is fine
    done = subprocess.run([*REPLAY, "--pnl", str(tmp_path / "short.csv")], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and "needs at least" in done.stderr and "Traceback" not in done.stderr
    nowhere = subprocess.run(
        [*REPLAY, "--pnl", str(tmp_path / "short.csv"), "--decisions", str(tmp_path / "no" / "such" / "out.csv")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert nowhere.returncode == 2 and "--decisions" in nowhere.stderr and "Traceback" not in nowhere.stderr


def test_replay_from_fills_uses_the_engines_daily_pnl(tmp_path: Path) -> None:
    from collector.config import SimulatorSourceConfig
    from collector.model import Fill
    from collector.sources.simulator import Simulation

    sim = Simulation(
        SimulatorSourceConfig(type="simulator", seed=9, accounts=2, strategies=3), DAY0 * 86_400 * NS, step_s=14_400
    )
    lines = []
    for _ in range(6 * 70):
        for event in sim.step(14_400):
            if isinstance(event, Fill):
                lines.append(json.dumps({k: getattr(event, k) for k in event.__slots__}))
    fills = tmp_path / "fills.jsonl"
    fills.write_text("\n".join(lines) + "\n")
    settings = Settings(state_dir=tmp_path / "state")
    panel = load_panel(settings, None, [str(fills)], False)
    assert len(panel.strategies) == 3
    assert set(panel.accounts[panel.strategies[0]]) == {"ACC01", "ACC02"}
    report = subprocess.run(
        [*CLI, "report", str(fills), "--format", "json"], capture_output=True, text=True, cwd=tmp_path
    )
    portfolio = json.loads(report.stdout)["levels"]["portfolio"][0]
    assert abs(np.nansum(panel.pnl) - portfolio["equity"]) < 1e-6 * max(1.0, abs(portfolio["equity"]))
    done = subprocess.run(
        [*REPLAY, "--fills", str(fills), "--warmup", "20", "--placebo", "3", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["days"] == len(panel.days)


def test_replay_from_influx_reads_perf_1d(settings: Settings) -> None:
    rng = np.random.default_rng(10)
    writer = open_writer(settings)
    expected = {}
    for strategy in ("a", "b"):
        for account in ("ACC01", "ACC02"):
            values = rng.normal(100, 1000, 70)
            expected[(strategy, account)] = values
            for i, v in enumerate(values):
                tags = {"level": "book", "account": account, "strategy": strategy}
                fields = {"pnl": float(v), "return": float(v) / 1e6, "trades": 3, "wins": 1}
                writer.write(point("perf_1d", tags, fields, (DAY0 + i) * 86_400 * NS))
    writer.close()
    panel = load_panel(settings, None, None, True)
    assert panel.strategies == ["a", "b"] and len(panel.days) == 70
    assert np.allclose(panel.pnl[:, 0], expected[("a", "ACC01")] + expected[("a", "ACC02")])
    assert np.allclose(panel.capital, [2e6, 2e6])
    result = replay(load_optimization(ROOT / "rules" / "optimization.yaml"), panel, warmup=20, placebo=0)
    assert result.days == 70
