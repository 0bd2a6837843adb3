"""After the evaluation window: keep, roll back when it hurt, roll out a canary; Thompson allocation."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from collector.model import NS
from collector.optimize.allocation import allocation_suggestions, thompson_weights
from collector.optimize.apply import Applier
from collector.optimize.evaluate import evaluate_changes, hurt_probability
from collector.optimize.rules import OptimizationConfig
from collector.optimize.suggest import DayStats
from tests.optimize.test_guardrails import _config

DAY = 86_400 * NS
D0 = 19_800


def _days(returns: list[float], first: int = D0) -> list[DayStats]:
    return [DayStats(first + i, r, r * 1e6, 10, 5) for i, r in enumerate(returns)]


def _apply(applier: Applier, day: int, account: str = "*") -> str:
    outcome = applier.propose(
        "trend_es", account, "size_multiplier", 1.2, risk="low", rule="grow", reason="test", now_ns=day * DAY
    )
    assert outcome.record is not None
    return outcome.record.id


def test_hurt_probability_matches_a_welch_test() -> None:
    rng = np.random.default_rng(1)
    before, after = list(rng.normal(0.002, 0.01, 40)), list(rng.normal(-0.004, 0.01, 40))
    p = hurt_probability(before, after)
    b, a = np.array(before), np.array(after)
    t = (a.mean() - b.mean()) / np.sqrt(b.var(ddof=1) / 40 + a.var(ddof=1) / 40)
    from statistics import NormalDist

    assert p is not None and abs(p - NormalDist().cdf(t)) < 1e-12 and p < 0.1
    assert hurt_probability(after, before) > 0.9  # type: ignore[operator]


def test_change_that_hurt_is_rolled_back_and_one_that_did_not_is_kept(tmp_path: Path) -> None:
    config: OptimizationConfig = _config(tmp_path, cooldown="1h")
    applier = Applier(config)
    _apply(applier, D0 + 10)
    rng = np.random.default_rng(3)
    history = {"trend_es": _days(list(rng.normal(0.003, 0.002, 10)) + list(rng.normal(-0.003, 0.002, 10)))}
    assert evaluate_changes(applier, history, {}, (D0 + 15) * DAY) == []  # window (10 d) not over yet
    [verdict] = evaluate_changes(applier, history, {}, (D0 + 21) * DAY)
    assert verdict.decision == "rolled back" and verdict.p_value is not None and verdict.p_value < 0.1
    assert applier.store.get("trend_es", "*", "size_multiplier", 1.0) == 1.0
    assert evaluate_changes(applier, history, {}, (D0 + 22) * DAY) == []  # judged once
    other = Applier(_config(tmp_path / "b", cooldown="1h"))
    _apply(other, D0 + 10)
    steady = {"trend_es": _days(list(rng.normal(0.001, 0.002, 21)))}
    [kept] = evaluate_changes(other, steady, {}, (D0 + 21) * DAY)
    assert kept.decision == "kept" and other.store.get("trend_es", "*", "size_multiplier", 1.0) == 1.2


def test_canary_rolls_out_only_when_it_does_not_underperform(tmp_path: Path) -> None:
    applier = Applier(_config(tmp_path, cooldown="1h"))
    _apply(applier, D0, account="ACC01")
    rng = np.random.default_rng(5)
    books = {(("trend_es", a)): _days(list(rng.normal(0.001, 0.002, 10))) for a in ("ACC01", "ACC02", "ACC03")}
    [verdict] = evaluate_changes(applier, {}, books, (D0 + 6) * DAY)  # canary window: 5 days
    assert verdict.decision == "rolled out"
    assert applier.store.get("trend_es", "ACC02", "size_multiplier", 1.0) == 1.2
    bad = Applier(_config(tmp_path / "bad", cooldown="1h"))
    _apply(bad, D0, account="ACC01")
    books[("trend_es", "ACC01")] = _days(list(rng.normal(-0.01, 0.002, 10)))
    [verdict] = evaluate_changes(bad, {}, books, (D0 + 6) * DAY)
    assert verdict.decision == "rolled back"
    assert bad.store.get("trend_es", "ACC02", "size_multiplier", 1.0) == 1.0  # never reached the others


def test_thompson_weights_favour_the_better_record_and_stay_in_bounds(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    returns = {
        "good": list(rng.normal(0.004, 0.005, 60)),
        "bad": list(rng.normal(-0.002, 0.005, 60)),
        "new": list(rng.normal(0.0, 0.005, 3)),
    }
    draws = [thompson_weights(returns, random.Random(i)) for i in range(200)]
    assert all(abs(sum(w.values()) / 3 - 1) < 1e-9 for w in draws)  # mean weight 1
    assert np.mean([w["good"] for w in draws]) > 2 * np.mean([w["bad"] for w in draws])
    assert np.mean([w["new"] > 0 for w in draws]) > 0.2  # a short record still gets explored
    config = _config(tmp_path)
    data = config.model_dump(mode="json", by_alias=True)
    for rule in data["rules"]:
        if rule["action"].get("reallocate"):
            rule["risk"] = "low"
    config = OptimizationConfig.model_validate(data)
    applier = Applier(config)
    histories = {f"trend_{n}": _days(list(rng.normal(mu, 0.005, 60))) for n, mu in (("a", 0.01), ("b", -0.01))}
    suggestions = allocation_suggestions(config, histories, applier.store, seed=1)
    assert {s.param for s in suggestions} == {"allocation"}
    for s in suggestions:
        outcome = applier.propose(
            s.strategy, "*", s.param, s.new, risk=s.risk, rule=s.rule, reason="t", now_ns=D0 * DAY
        )
        assert outcome.decision.applied and 0.8 <= float(outcome.decision.value) <= 1.2  # type: ignore[arg-type]


def test_the_simulator_reads_the_store_closing_the_loop(tmp_path: Path) -> None:
    from collector.config import SimulatorSourceConfig
    from collector.model import Fill
    from collector.optimize.store import ParameterStore
    from collector.sources.simulator import Simulation, store_controls

    store = ParameterStore(tmp_path / "p.json")
    store.set("mm_es", "*", "enabled", False)
    store.set("trend_es", "*", "size_multiplier", 0.0)
    store.set("carry_fx", "*", "size_multiplier", 2.0)
    config = SimulatorSourceConfig(type="simulator", seed=3, accounts=1)
    plain, steered = Simulation(config, 1_700_000_000 * NS), Simulation(config, 1_700_000_000 * NS)
    steered.controls = store_controls(store)
    fills: dict[str, list[Fill]] = {"plain": [], "steered": []}
    marks: dict[str, list[float]] = {"plain": [], "steered": []}
    for name, sim in (("plain", plain), ("steered", steered)):
        for _ in range(24 * 10):
            for event in sim.step(3600):
                if isinstance(event, Fill):
                    fills[name].append(event)
                else:
                    marks[name].append(event.price)
    assert marks["plain"] == marks["steered"]  # the same market either way
    entries = [f for f in fills["steered"] if f.strategy in ("mm_es", "trend_es")]
    assert entries == [] and any(f.strategy == "mm_es" for f in fills["plain"])
    carry_plain = [f.qty for f in fills["plain"] if f.strategy == "carry_fx"]
    carry_steered = [f.qty for f in fills["steered"] if f.strategy == "carry_fx"]
    assert carry_steered and sum(carry_steered) > 1.5 * sum(carry_plain)


def test_the_optimize_job_is_scheduled_inside_run(tmp_path: Path) -> None:
    from collector.config import Settings
    from collector.jobs.scheduler import JOBS, start_scheduler

    settings = Settings(
        state_dir=tmp_path, optimize={"rules": str(Path(__file__).resolve().parents[2] / "rules" / "optimization.yaml")}
    )
    scheduler = start_scheduler(settings, writer=None)  # type: ignore[arg-type]
    try:
        job = scheduler.get_job("optimize")
        assert job is not None and "optimize" in JOBS
        assert job.trigger.interval.total_seconds() == settings.optimize.every
    finally:
        scheduler.shutdown(wait=False)


def test_parameter_push_reaches_the_trading_system(tmp_path: Path) -> None:
    from collector.optimize.store import ParameterStore
    from collector.receivers import http_receiver

    with http_receiver() as receiver:
        receiver.fail_next = 1  # the first push fails: retried
        store = ParameterStore(tmp_path / "p.json", push_url=receiver.url + "/parameters", retries=2)
        store.set("trend_es", "*", "size_multiplier", 0.8)
        [request] = receiver.wait(1)
        assert request.path == "/parameters"
        assert request.json()["parameters"] == {"trend_es": {"*": {"size_multiplier": 0.8}}}
