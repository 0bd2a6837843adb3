"""After the evaluation window: keep, roll back when it hurt, roll out a canary; Thompson allocation."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from collector.model import NS
from collector.optimize.allocation import allocation_suggestions, thompson_weights
from collector.optimize.apply import Applier, Outcome
from collector.optimize.evaluate import judge_canaries, judge_rules, paired_hurt_probability
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


def test_paired_hurt_probability_matches_a_paired_t_test() -> None:
    rng = np.random.default_rng(1)
    peers = rng.normal(0.002, 0.01, 40)
    mine = peers + rng.normal(-0.004, 0.005, 40)  # the same days, worse
    p = paired_hurt_probability(list(mine), list(peers))
    d = mine - peers
    from statistics import NormalDist

    expected = NormalDist().cdf(d.mean() / (d.std(ddof=1) / np.sqrt(40)))
    assert p is not None and abs(p - expected) < 1e-12 and p < 0.1
    assert paired_hurt_probability(list(peers), list(mine)) > 0.9  # type: ignore[operator]
    assert paired_hurt_probability([0.1, 0.2], [0.1, 0.2]) is None  # too few days


def _perverse(tmp_path: Path) -> OptimizationConfig:
    """A rule that doubles the size of strategies that are losing: its changes hurt."""
    config = _config(tmp_path, cooldown="1h", daily_budget=100, evaluation="20d")
    data = config.model_dump(mode="json", by_alias=True)
    data["rules"] = [
        {
            "name": "double-the-losers",
            "window": {"days": 20},
            "when": [{"metric": "sharpe", "op": "lt", "value": 0}],
            "action": {"param": "size_multiplier", "set": 2.0},
            "risk": "low",
        }
    ]
    return OptimizationConfig.model_validate(data)


def _double_trend_es(applier: Applier) -> Outcome:
    """The perverse rule's change on day 20: trend_es to 2.0 (one step of 0.25 allowed)."""
    return applier.propose(
        "trend_es",
        "*",
        "size_multiplier",
        2.0,
        risk="low",
        rule="double-the-losers",
        reason="t",
        now_ns=(D0 + 20) * DAY,
    )


def test_a_rule_that_hurts_is_disabled_against_its_exact_counterfactual(tmp_path: Path) -> None:
    config = _perverse(tmp_path)
    applier = Applier(config)
    rng = np.random.default_rng(3)
    days = 160
    histories = {
        "trend_es": _days(list(rng.normal(-0.003, 0.002, days))),  # a steady loser
        "trend_nq": _days(list(rng.normal(0.002, 0.004, days))),
        "trend_cl": _days(list(rng.normal(0.002, 0.004, days))),
    }
    applied = _double_trend_es(applier)
    assert applied.decision.applied and applied.decision.value == 1.25  # limited to one step
    # the traded history: trend_es at the new size from day 20 on
    traded = {k: list(v) for k, v in histories.items()}
    traded["trend_es"] = [
        d if d.day < D0 + 20 else DayStats(d.day, 1.25 * d.ret, 1.25 * d.pnl, 10, 5) for d in traded["trend_es"]
    ]
    from collector.optimize.job import unit_histories

    unit = unit_histories(applier, traded)
    assert [d.ret for d in unit["trend_es"]] == pytest.approx([d.ret for d in histories["trend_es"]])
    assert judge_rules(applier, unit, (D0 + 60) * DAY) == []  # fewer than 100 days of effect: not judged yet
    [verdict] = judge_rules(applier, unit, (D0 + days) * DAY)
    assert verdict.decision == "disabled" and verdict.rule == "double-the-losers"
    assert verdict.delta_sharpe is not None and verdict.delta_sharpe[2] < 0
    assert applier.store.get("trend_es", "*", "size_multiplier", 1.0) == 1.0  # back to the default
    assert applier.disabled_rules() == {"double-the-losers"}
    assert judge_rules(applier, unit, (D0 + days + 20) * DAY) == []  # judged once


def test_a_rule_that_helps_is_kept(tmp_path: Path) -> None:
    config = _perverse(tmp_path)
    applier = Applier(config)
    rng = np.random.default_rng(4)
    histories = {name: _days(list(rng.normal(0.002, 0.004, 160))) for name in ("trend_es", "trend_nq", "trend_cl")}
    _double_trend_es(applier)
    assert judge_rules(applier, histories, (D0 + 160) * DAY) == []
    assert applier.store.get("trend_es", "*", "size_multiplier", 1.0) == 1.25


def test_canary_is_judged_against_its_peers_on_the_same_days(tmp_path: Path) -> None:
    applier = Applier(_config(tmp_path, cooldown="1h"))
    _apply(applier, D0, account="ACC01")
    rng = np.random.default_rng(5)
    market = rng.normal(0.001, 0.004, 12)  # a common factor on the same days
    books = {("trend_es", a): _days(list(market + rng.normal(0, 0.001, 12))) for a in ("ACC01", "ACC02", "ACC03")}
    assert judge_canaries(applier, books, (D0 + 5) * DAY) == []  # canary window (10 days) not over
    [verdict] = judge_canaries(applier, books, (D0 + 11) * DAY)
    assert verdict.decision == "rolled out"
    assert applier.store.get("trend_es", "ACC02", "size_multiplier", 1.0) == 1.2
    bad = Applier(_config(tmp_path / "bad", cooldown="1h"))
    _apply(bad, D0, account="ACC01")
    books[("trend_es", "ACC01")] = _days(list(market - 0.004 + rng.normal(0, 0.001, 12)))
    [verdict] = judge_canaries(bad, books, (D0 + 11) * DAY)
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
    applier = Applier(config)
    histories = {f"trend_{n}": _days(list(rng.normal(mu, 0.005, 60))) for n, mu in (("a", 0.01), ("b", -0.01))}
    suggestions = allocation_suggestions(config, histories, applier.store, seed=1)
    assert {s.param for s in suggestions} == {"allocation"} and {s.risk for s in suggestions} == {"medium"}
    for s in suggestions:
        outcome = applier.propose(
            s.strategy, "*", s.param, s.new, risk=s.risk, rule=s.rule, reason="t", now_ns=D0 * DAY
        )
        assert not outcome.decision.applied and "medium risk" in outcome.decision.reason  # a proposal at most
    data = config.model_dump(mode="json", by_alias=True)
    for rule in data["rules"]:
        if rule["action"].get("reallocate"):
            rule["risk"] = "low"
    with pytest.raises(ValueError, match="Thompson allocation is a proposal"):
        OptimizationConfig.model_validate(data)


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
    # common random numbers: the same trades, at the same times, scaled (to 1/64 lot per part of an order)
    carry_plain = [(f.ts, f.side, f.qty) for f in fills["plain"] if f.strategy == "carry_fx"]
    carry_steered = [(f.ts, f.side, f.qty) for f in fills["steered"] if f.strategy == "carry_fx"]
    assert carry_plain and [(t, s) for t, s, _ in carry_plain] == [(t, s) for t, s, _ in carry_steered]
    assert all(abs(b - 2 * a) <= 3 / 64 for (_, _, a), (_, _, b) in zip(carry_plain, carry_steered, strict=True))

    def others(name: str) -> list[tuple[object, ...]]:
        skip = ("mm_es", "trend_es", "carry_fx")
        return [(f.ts, f.strategy, f.symbol, f.side, f.qty, f.price) for f in fills[name] if f.strategy not in skip]

    assert others("plain") == others("steered")  # nobody else's trades moved


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
