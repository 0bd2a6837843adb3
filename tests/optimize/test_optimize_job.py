"""Suggestions from daily histories, and the optimization run through InfluxDB, the store and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from collector.config import Settings
from collector.model import NS
from collector.optimize.job import optimize
from collector.optimize.policy import Prefix, benjamini_hochberg, window_stats
from collector.optimize.rules import OptimizationRule, Window, load_optimization
from collector.optimize.store import ParameterStore
from collector.optimize.suggest import DayStats, history_panel, suggest
from collector.store.connect import open_writer
from collector.store.lineproto import point
from collector.store.reader import Reader
from tests.run.conftest import scalar

ROOT = Path(__file__).resolve().parents[2]
DAY0 = 19_800  # a UTC day number


def _history(returns: list[float], trades: int = 10, wins: int = 5) -> list[DayStats]:
    return [DayStats(DAY0 + i, r, r * 1e6, trades, wins) for i, r in enumerate(returns)]


def test_window_statistics_match_numpy_and_trade_windows() -> None:
    rng = np.random.default_rng(4)
    returns = list(rng.normal(0.001, 0.01, 30))
    prefix = Prefix(history_panel({"trend_es": _history(returns, trades=7, wins=3)}))
    rule = OptimizationRule.model_validate(
        {
            "name": "r",
            "window": {"days": 20},
            "when": [{"metric": "sharpe", "op": "gt", "value": 0}],
            "action": {"param": "size_multiplier", "step": 0.1},
            "risk": "low",
        }
    )
    w = window_stats(prefix, 30, rule)
    r = np.array(returns[-20:])
    assert abs(w.metrics["sharpe"][0] - r.mean() / r.std(ddof=1) * np.sqrt(252)) < 1e-9
    d = r - r.mean()
    assert abs(w.skew[0] - np.mean(d**3) / np.mean(d**2) ** 1.5) < 1e-9
    assert abs(w.kurt[0] - np.mean(d**4) / np.mean(d**2) ** 2) < 1e-9
    assert w.metrics["win_rate"][0] == 3 / 7 and w.metrics["trades"][0] == 140 and w.full[0]
    assert not window_stats(prefix, 15, rule).full[0]  # 15 days: the 20-day window is not full
    by_trades = rule.model_copy(update={"window": Window(trades=50)})
    w = window_stats(prefix, 30, by_trades)
    assert w.n[0] == 8 and w.full[0]  # 8 days × 7 trades ≥ 50
    assert not window_stats(prefix, 2, by_trades).full[0]  # not enough trades yet


def test_benjamini_hochberg_matches_the_textbook_procedure() -> None:
    rng = np.random.default_rng(9)
    p = rng.uniform(0, 0.2, (50, 12)) ** 2
    mask = rng.uniform(size=p.shape) < 0.8
    got = benjamini_hochberg(p, mask, 0.1, mask.sum(axis=1) * 2.0)
    for row in range(len(p)):
        idx = np.flatnonzero(mask[row])
        m = 2 * len(idx)
        order = idx[np.argsort(p[row, idx])]
        k = max((i + 1 for i, j in enumerate(order) if p[row, j] <= 0.1 * (i + 1) / m), default=0)
        assert set(np.flatnonzero(got[row])) == set(order[:k].tolist())


def test_default_rules_follow_volatility_and_strong_evidence_only(tmp_path: Path) -> None:
    config = load_optimization(ROOT / "rules" / "optimization.yaml")
    store = ParameterStore(tmp_path / "p.json")
    rng = np.random.default_rng(8)
    # a desk with real, very different edges: size-by-evidence sizes the best up and the worst down
    mus = {"trend_es": 0.006, "trend_nq": 0.004, "trend_cl": 0.003, "trend_gc": 0.003, "trend_fx": 0.0005}
    desk = {name: _history(list(rng.normal(mu, 0.01, 130))) for name, mu in mus.items()}
    by = {(s.strategy, s.rule): s for s in suggest(config, desk, store)}
    assert float(by[("trend_es", "size-by-evidence")].new) > 1 > float(by[("trend_fx", "size-by-evidence")].new)
    assert not any(rule == "volatility-target" for _, rule in by)  # the same volatility: nothing to do
    # pure noise with different volatilities: equal-risk allocation moves, the evidence rules do not
    noise = {name: _history(list(rng.normal(0, 0.01 * (3 if name == "trend_es" else 1), 130))) for name in mus}
    out = suggest(config, noise, store)
    assert {s.rule for s in out} == {"volatility-target"}
    vols = {name: np.std([d.pnl for d in h][-60:], ddof=1) for name, h in noise.items()}
    inverse = {name: (1 / v) / np.mean([1 / x for x in vols.values()]) for name, v in vols.items()}
    [es] = [s for s in out if s.strategy == "trend_es"]
    assert es.param == "allocation" and abs(float(es.new) - inverse["trend_es"]) < 1e-9  # 1/σ, mean 1


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
    series = {
        name: list(rng.normal(0.0, 0.01 * (3 if name == "trend_es" else 1), 70))
        for name in ("trend_es", "trend_nq", "trend_cl")
    }
    for name, returns in series.items():
        _write_days(settings, name, returns)
    writer = open_writer(settings)
    try:
        results = optimize(settings, writer, lookback_days=20_000)
    finally:
        writer.close()
    vols = {name: np.std(np.array(r[-60:]) * 1e6, ddof=1) for name, r in series.items()}
    expected = {name: (1 / v) / np.mean([1 / x for x in vols.values()]) for name, v in vols.items()}
    moved = {name for name, e in expected.items() if abs(e - 1) > 0.3}  # the dead band
    assert "trend_es" in moved
    applied = {r.suggestion.strategy for r in results if r.status == "applied"}
    assert applied == moved and {r.suggestion.rule for r in results if r.status == "applied"} == {"volatility-target"}
    proposed = {r.suggestion.rule for r in results if r.status == "proposed"}
    assert proposed == {"reallocate-capital"}  # Thompson allocation: proposals only
    stored = json.loads((tmp_path / "parameters.json").read_text())
    for name in moved:
        assert stored["parameters"][name]["*"]["allocation"] == pytest.approx(expected[name], rel=1e-9)
    assert scalar(reader, "SELECT count(confidence) FROM suggestions WHERE status = 'applied'") == len(moved)
    change = json.loads((tmp_path / "changes.jsonl").read_text().splitlines()[0])
    first = expected[change["strategy"]]
    config = tmp_path / "stratmon.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json", exclude={"sources"})))
    cli = [sys.executable, "-m", "collector", "changes"]
    listed = subprocess.run([*cli, "list", "--config", str(config)], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "trend_es" in listed.stdout
    change_id = change["id"]
    shown = subprocess.run([*cli, "show", change_id, "--config", str(config)], capture_output=True, text=True)
    assert json.loads(shown.stdout)["new"] == pytest.approx(first, rel=1e-9)
    undone = subprocess.run([*cli, "rollback", change_id, "--config", str(config)], capture_output=True, text=True)
    assert undone.returncode == 0, undone.stderr
    assert json.loads((tmp_path / "parameters.json").read_text())["parameters"]["trend_es"]["*"]["allocation"] == 1.0
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
    grow = {
        "name": "grow-size-when-proven",
        "window": {"days": 20},
        "when": [{"metric": "sharpe", "op": "gt", "value": 1.0}],
        "guard": {"dsr_above": 0.95},
        "action": {"param": "size_multiplier", "step": 0.1},
        "risk": "low",
    }
    data["rules"] = [grow]
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
