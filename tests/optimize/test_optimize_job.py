"""Suggestions from daily histories, and the optimization run through InfluxDB, the store and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from collector.config import Settings
from collector.model import NS
from collector.optimize.job import optimize
from collector.optimize.rules import load_optimization
from collector.optimize.store import ParameterStore
from collector.optimize.suggest import DayStats, suggest, window_days, window_metrics
from collector.store.connect import open_writer
from collector.store.lineproto import point
from collector.store.reader import Reader
from tests.run.conftest import scalar

ROOT = Path(__file__).resolve().parents[2]
DAY0 = 19_800  # a UTC day number


def _history(returns: list[float], trades: int = 10, wins: int = 5) -> list[DayStats]:
    return [DayStats(DAY0 + i, r, r * 1e6, trades, wins) for i, r in enumerate(returns)]


def test_window_metrics_match_numpy_and_trade_windows() -> None:
    rng = np.random.default_rng(4)
    returns = list(rng.normal(0.001, 0.01, 30))
    days = _history(returns, trades=7, wins=3)
    metrics = window_metrics(days)
    r = np.array(returns)
    assert metrics["sharpe"] is not None
    assert abs(metrics["sharpe"] - r.mean() / r.std(ddof=1) * np.sqrt(252)) < 1e-9
    assert metrics["win_rate"] == 3 / 7 and metrics["trades"] == 210
    from collector.optimize.rules import Window

    assert len(window_days(days, Window(trades=50))) == 8  # 8 days × 7 trades ≥ 50
    assert window_days(days[:2], Window(trades=50)) == []  # not enough trades yet


def test_rules_fire_only_with_their_evidence(tmp_path: Path) -> None:
    config = load_optimization(ROOT / "rules" / "optimization.yaml")
    store = ParameterStore(tmp_path / "p.json")
    rng = np.random.default_rng(8)
    losing = _history(list(rng.normal(-0.004, 0.002, 25)))
    noisy = _history(list(rng.normal(0.0, 0.01, 25)))
    winning = _history(list(rng.normal(0.004, 0.002, 25)))
    out = suggest(config, {"trend_es": losing, "trend_nq": noisy, "trend_cl": winning}, store)
    by = {(s.strategy, s.rule): s for s in out}
    cut = by[("trend_es", "cut-size-when-decaying")]
    assert cut.param == "size_multiplier" and cut.new == 0.7 and cut.risk == "low" and cut.confidence > 0.95
    assert not any(s.strategy == "trend_nq" for s in out)  # noise: no evidence either way
    assert by[("trend_cl", "grow-size-when-proven")].new == 1.1


def _write_days(settings: Settings, strategy: str, returns: list[float]) -> None:
    writer = open_writer(settings)
    start = (DAY0 + 0) * 86_400 * NS
    for i, r in enumerate(returns):
        tags = {"level": "strategy", "account": "_all", "strategy": strategy}
        writer.write(
            point("perf_1d", tags, {"return": r, "pnl": r * 1e6, "trades": 12, "wins": 5}, start + i * 86_400 * NS)
        )
    writer.close()


def test_optimize_run_applies_audits_and_rolls_back(settings: Settings, reader: Reader, tmp_path: Path) -> None:
    rules = yaml.safe_load((ROOT / "rules" / "optimization.yaml").read_text())
    rules["store"] = {"path": str(tmp_path / "parameters.json"), "audit": str(tmp_path / "changes.jsonl")}
    rules["guardrails"]["kill_switch_file"] = str(tmp_path / "kill")
    (tmp_path / "opt.yaml").write_text(yaml.safe_dump(rules))
    settings.optimize.rules = tmp_path / "opt.yaml"
    rng = np.random.default_rng(2)
    _write_days(settings, "trend_es", list(rng.normal(-0.004, 0.002, 25)))
    writer = open_writer(settings)
    try:
        results = optimize(settings, writer, lookback_days=2000)
    finally:
        writer.close()
    statuses = {(r.suggestion.rule, r.status) for r in results}
    assert statuses == {("cut-size-when-decaying", "applied"), ("retune-lookback-when-decaying", "proposed")}
    stored = json.loads((tmp_path / "parameters.json").read_text())
    assert stored["parameters"]["trend_es"]["*"]["size_multiplier"] == 0.75  # scale 0.7, limited to max_step 0.25
    assert scalar(reader, "SELECT count(confidence) FROM suggestions WHERE status = 'applied'") == 1
    assert scalar(reader, "SELECT count(confidence) FROM suggestions WHERE status = 'proposed'") == 1
    assert scalar(reader, "SELECT last(new) FROM changes WHERE action = 'apply'") == 0.75
    config = tmp_path / "stratmon.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json", exclude={"sources"})))
    cli = [sys.executable, "-m", "collector", "changes"]
    listed = subprocess.run([*cli, "list", "--config", str(config)], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "trend_es" in listed.stdout
    change_id = json.loads((tmp_path / "changes.jsonl").read_text().splitlines()[0])["id"]
    shown = subprocess.run([*cli, "show", change_id, "--config", str(config)], capture_output=True, text=True)
    assert json.loads(shown.stdout)["new"] == 0.75
    undone = subprocess.run([*cli, "rollback", change_id, "--config", str(config)], capture_output=True, text=True)
    assert undone.returncode == 0, undone.stderr
    assert (
        json.loads((tmp_path / "parameters.json").read_text())["parameters"]["trend_es"]["*"]["size_multiplier"] == 1.0
    )
    again = subprocess.run([*cli, "rollback", change_id, "--config", str(config)], capture_output=True, text=True)
    assert again.returncode == 2 and "already rolled back" in again.stderr


def test_deflated_sharpe_guard_counts_the_configurations_tried(tmp_path: Path) -> None:
    from collector.optimize.rules import OptimizationConfig
    from collector.optimize.statistics import deflated_sharpe_ratio
    from collector.optimize.suggest import trial_sharpes

    rng = np.random.default_rng(11)
    returns = list(rng.normal(0.003, 0.004, 60))
    history = _history(returns)
    trials = trial_sharpes(history, [DAY0 + 20, DAY0 + 40])
    expected = [np.mean(returns[a:b]) / np.std(returns[a:b], ddof=1) for a, b in ((0, 20), (20, 40), (40, 60))]
    assert np.allclose(trials, expected)
    data = load_optimization(ROOT / "rules" / "optimization.yaml").model_dump(mode="json", by_alias=True)
    grow = next(r for r in data["rules"] if r["name"] == "grow-size-when-proven")
    grow["guard"] = {"dsr_above": 0.95}
    config = OptimizationConfig.model_validate(data)
    store = ParameterStore(tmp_path / "p.json")
    assert not any(s.rule == grow["name"] for s in suggest(config, {"trend_es": history}, store))  # no trials yet
    with_trials = suggest(config, {"trend_es": history}, store, {"trend_es": [DAY0 + 20, DAY0 + 40]})
    window = np.array(returns[-20:])
    sr = window.mean() / window.std(ddof=1)
    d = window - window.mean()
    dsr = deflated_sharpe_ratio(
        sr, 20, trials, float(np.mean(d**3) / np.mean(d**2) ** 1.5), float(np.mean(d**4) / np.mean(d**2) ** 2)
    )
    assert any(s.rule == grow["name"] for s in with_trials) == (dsr > 0.95)
