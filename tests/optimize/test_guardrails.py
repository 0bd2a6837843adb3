"""Every guardrail, attacked: bounds, max step, risk, cooldown, budget, kill switch, flag, dry run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.errors import UserError
from collector.model import NS
from collector.optimize.apply import Applier
from collector.optimize.rules import OptimizationConfig, load_optimization

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_709_301_600 * NS
HOUR = 3600 * NS


def _config(tmp_path: Path, **guardrails: Any) -> OptimizationConfig:
    config = load_optimization(ROOT / "rules" / "optimization.yaml")
    data = config.model_dump(mode="json", by_alias=True)
    data["guardrails"] |= {"kill_switch_file": str(tmp_path / "kill"), "cooldown": "1h", "daily_budget": 3} | guardrails
    data["store"] = {"path": str(tmp_path / "parameters.json"), "audit": str(tmp_path / "changes.jsonl")}
    return OptimizationConfig.model_validate(data)


def _propose(
    applier: Applier,
    value: float | bool,
    now: int,
    *,
    param: str = "size_multiplier",
    strategy: str = "trend_es",
    account: str = "*",
    risk: str = "low",
) -> Any:
    return applier.propose(strategy, account, param, value, risk=risk, rule="test", reason="test", now_ns=now)


def _stored(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "parameters.json"
    return json.loads(path.read_text())["parameters"] if path.exists() else {}


def test_bounds_and_max_step_clamp_any_proposal(tmp_path: Path) -> None:
    applier = Applier(_config(tmp_path, cooldown="0s", daily_budget=100))
    outcome = _propose(applier, 1e9, T0)  # far above max 2.0, and a huge step
    assert outcome.decision.applied and outcome.decision.value == 1.25  # 1.0 + max_step 0.25
    assert "bounds" in outcome.decision.reason and "step" in outcome.decision.reason
    for i in range(10):
        _propose(applier, 1e9, T0 + i * NS)
    assert _stored(tmp_path)["trend_es"]["*"]["size_multiplier"] == 2.0  # never past max
    for i in range(20):
        _propose(applier, -5.0, T0 + (20 + i) * NS)
    assert _stored(tmp_path)["trend_es"]["*"]["size_multiplier"] == 0.25  # never below min
    assert _propose(applier, float("nan"), T0 + 100 * NS).decision.applied is False


def test_integer_parameters_stay_integers_within_their_step(tmp_path: Path) -> None:
    applier = Applier(_config(tmp_path, cooldown="0s", daily_budget=100))
    outcome = _propose(applier, 77.7, T0, param="lookback")
    assert outcome.decision.value == 60.0  # 50 + max_step 10, whole number
    assert _propose(applier, 1.0, T0 + NS, param="entry_z", strategy="trend_es").decision.applied is False  # undeclared


def test_only_low_risk_is_applied(tmp_path: Path) -> None:
    applier = Applier(_config(tmp_path))
    for risk in ("medium", "high"):
        outcome = _propose(applier, 1.1, T0, risk=risk)
        assert not outcome.decision.applied and "never applied automatically" in outcome.decision.reason
    assert _stored(tmp_path) == {}


def test_cooldown_per_target(tmp_path: Path) -> None:
    applier = Applier(_config(tmp_path))
    assert _propose(applier, 1.1, T0).decision.applied
    blocked = _propose(applier, 1.2, T0 + HOUR - NS)
    assert not blocked.decision.applied and "cooldown" in blocked.decision.reason
    assert _propose(applier, 1.1, T0 + NS, strategy="trend_nq").decision.applied  # another target is free
    assert _propose(applier, 1.2, T0 + HOUR).decision.applied
    again = Applier(_config(tmp_path))  # a restart remembers, from the audit log
    assert "cooldown" in _propose(again, 1.3, T0 + HOUR + NS).decision.reason


def test_daily_budget_across_targets_and_restarts(tmp_path: Path) -> None:
    applier = Applier(_config(tmp_path, daily_budget=3))
    for i, strategy in enumerate(("trend_es", "trend_nq", "trend_cl")):
        assert _propose(applier, 1.1, T0 + i * NS, strategy=strategy).decision.applied
    over = Applier(_config(tmp_path, daily_budget=3))
    refused = _propose(over, 1.1, T0 + 10 * NS, strategy="trend_gc")
    assert not refused.decision.applied and "budget" in refused.decision.reason
    assert _propose(over, 1.1, T0 + 86_400 * NS, strategy="trend_gc").decision.applied  # next UTC day


def test_kill_switch_file_and_flag_take_effect_immediately(tmp_path: Path) -> None:
    applier = Applier(_config(tmp_path, cooldown="0s"))
    assert _propose(applier, 1.1, T0).decision.applied
    (tmp_path / "kill").touch()  # while the applier is running
    stopped = _propose(applier, 1.2, T0 + NS)
    assert not stopped.decision.applied and "kill switch" in stopped.decision.reason
    (tmp_path / "kill").unlink()
    assert _propose(applier, 1.2, T0 + 2 * NS).decision.applied
    disabled = Applier(_config(tmp_path, enabled=False, cooldown="0s"))
    assert "disabled" in _propose(disabled, 1.3, T0 + 3 * NS).decision.reason
    assert _stored(tmp_path)["trend_es"]["*"]["size_multiplier"] == 1.2


def test_dry_run_audits_but_never_writes(tmp_path: Path) -> None:
    applier = Applier(_config(tmp_path, dry_run=True))
    outcome = _propose(applier, 1.1, T0)
    assert outcome.decision.dry_run and not outcome.decision.applied
    assert _stored(tmp_path) == {}
    assert [r.action for r in applier.audit.records()] == ["dry-run"]


def test_rollback_restores_and_is_audited_once(tmp_path: Path) -> None:
    applier = Applier(_config(tmp_path))
    change = _propose(applier, 1.25, T0).record
    assert change is not None
    (tmp_path / "kill").touch()  # people can still roll back with the kill switch on
    undone = applier.rollback(change.id, reason="worse than baseline", now_ns=T0 + NS)
    assert undone.decision.applied and undone.record is not None and undone.record.rolls_back == change.id
    assert _stored(tmp_path)["trend_es"]["*"]["size_multiplier"] == 1.0
    assert not applier.rollback(change.id, reason="again", now_ns=T0 + 2 * NS).decision.applied
    assert [r.action for r in applier.audit.records()] == ["apply", "rollback"]


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["size_multiplier", "lookback", "entry_z", "enabled"]),
            st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.booleans()),
            st.sampled_from(["trend_es", "meanrev_spx", "pairs_tech"]),
        ),
        max_size=25,
    )
)
def test_no_sequence_of_proposals_leaves_the_bounds(tmp_path_factory: pytest.TempPathFactory, steps: list[Any]) -> None:
    tmp_path = tmp_path_factory.mktemp("prop")
    config = _config(tmp_path, cooldown="0s", daily_budget=1000)
    applier = Applier(config)
    for i, (param, value, strategy) in enumerate(steps):
        parameter = config.parameter(param, strategy)
        before = applier.store.get(strategy, "*", param, parameter.default) if parameter else None
        outcome = _propose(applier, value, T0 + i * NS, param=param, strategy=strategy)
        if outcome.decision.applied and parameter is not None and parameter.type != "bool":
            after = applier.store.get(strategy, "*", param, parameter.default)
            assert parameter.min is not None and parameter.max is not None and parameter.max_step is not None
            assert parameter.min <= float(after) <= parameter.max
            assert abs(float(after) - float(before)) <= parameter.max_step + 1e-12  # type: ignore[arg-type]


def test_rule_file_mistakes_name_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "opt.yaml"
    path.write_text(
        "parameters:\n  - name: size_multiplier\n    type: float\n    min: 0\n    max: 2\n    default: 3\n"
        "    max_step: 0.1\n"
    )
    with pytest.raises(UserError, match=rf"{path}:2.*outside"):
        load_optimization(path)
    path.write_text(
        "rules:\n  - name: r\n    window: {days: 5}\n    when: [{metric: sharpe, op: lt, value: 0}]\n"
        "    action: {param: size_multiplier, scale: 0.5, step: 1}\n    risk: low\n"
    )
    with pytest.raises(UserError, match="exactly one of"):
        load_optimization(path)
