"""`rules/optimization.yaml`: tunable parameters with their bounds, guardrails, and suggestion rules.

Parameters are declared once with type, bounds, default and the largest change one step may
make; rules say when to change which parameter (conditions on metrics over a window, statistical
guards) and how risky that is. Only `low` risk is ever applied automatically, and never beyond
the declared bounds or step. Errors name file, line, key and expectation.
"""

from __future__ import annotations

import fnmatch
import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from collector.alerts.rules import Duration, Name
from collector.yamlfile import load_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Parameter(_Strict):
    """A knob of the trading system, for the strategies (names or globs) it applies to."""

    name: Name
    strategies: list[str] = Field(default_factory=lambda: ["*"])
    per_account: bool = Field(False, description="set per strategy × account instead of per strategy")
    type: Literal["float", "int", "bool"] = "float"
    min: float | None = None
    max: float | None = None
    default: float | bool
    max_step: float | None = Field(None, gt=0, description="largest change one applied step may make")

    @model_validator(mode="after")
    def _consistent(self) -> Parameter:
        if self.type == "bool":
            if not isinstance(self.default, bool) or self.min is not None or self.max is not None:
                raise ValueError("a bool parameter has a true/false default and no min/max")
            return self
        if isinstance(self.default, bool):
            raise ValueError(f"a {self.type} parameter needs a numeric default")
        if self.min is None or self.max is None or self.max_step is None:
            raise ValueError(f"a {self.type} parameter needs min, max and max_step")
        if not all(math.isfinite(x) for x in (self.min, self.max, self.max_step, self.default)):
            raise ValueError("min, max, max_step and default must be finite numbers")
        if self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        if self.type == "int" and not all(float(x).is_integer() for x in (self.min, self.max, self.default)):
            raise ValueError("an int parameter needs whole-number min, max and default")
        if self.type == "int" and self.max_step < 1:
            raise ValueError("an int parameter needs max_step ≥ 1 (it moves in whole steps)")
        if not self.min <= self.default <= self.max:
            raise ValueError(f"default {self.default} is outside [{self.min}, {self.max}]")
        return self

    def applies_to(self, strategy: str) -> bool:
        return any(fnmatch.fnmatchcase(strategy, pattern) for pattern in self.strategies)


class Canary(_Strict):
    enabled: bool = True
    evaluation: Duration = Field(5 * 86_400.0, description="how long the canary runs before the rollout")


class Guardrails(_Strict):
    enabled: bool = Field(True, description="global switch: false stops every automatic change at once")
    kill_switch_file: Path = Field(Path(".stratmon/optimizer.kill"), description="its existence stops changes")
    dry_run: bool = Field(False, description="decide and audit, but never write the parameter store")
    cooldown: Duration = Field(86_400.0, description="per target and parameter, between applied changes")
    daily_budget: int = Field(10, ge=0, description="applied changes per UTC day, all targets together")
    canary: Canary = Field(default_factory=Canary)
    evaluation: Duration = Field(10 * 86_400.0, description="after this long an applied change is judged")


class StoreConfig(_Strict):
    """Where applied parameters go: a JSON file the trading system reads, and optionally an HTTP push."""

    path: Path = Path(".stratmon/parameters.json")
    audit: Path = Path(".stratmon/changes.jsonl")
    push_url_env: str | None = Field(None, description="environment variable with a URL to POST the store to")


class Condition(_Strict):
    metric: Literal["sharpe", "psr", "win_rate", "expectancy", "net_pnl", "max_drawdown_pct", "trades", "days"]
    op: Literal["gt", "ge", "lt", "le"]
    value: float


class Window(_Strict):
    days: int | None = Field(None, ge=2, le=3650)
    trades: int | None = Field(None, ge=5, le=1_000_000)

    @model_validator(mode="after")
    def _one(self) -> Window:
        if (self.days is None) == (self.trades is None):
            raise ValueError("a window is either days: N or trades: N")
        return self


class Guard(_Strict):
    """Statistical evidence required before the action is suggested at all."""

    psr_above: float | None = Field(None, gt=0, lt=1, description="PSR(benchmark) must exceed this")
    psr_below: float | None = Field(None, gt=0, lt=1, description="PSR(benchmark) must be below this")
    benchmark_sharpe: float = Field(0.0, description="annualized Sharpe the PSR is computed against")
    min_track_record: bool = Field(False, description="require the window to reach the MinTRL at 95%")
    dsr_above: float | None = Field(
        None, gt=0, lt=1, description="Deflated Sharpe: trials = the configurations the optimizer has tried"
    )
    reference: Literal["zero", "desk", "shrunk"] = Field(
        "zero", description="the Sharpe tested against: benchmark_sharpe, the desk's mean, or the own shrunk edge"
    )
    fdr: float | None = Field(
        None, gt=0, lt=1, description="Benjamini–Hochberg false discovery rate over strategies × looks"
    )


class Action(_Strict):
    param: Name | None = None
    set: float | bool | None = None
    scale: float | None = Field(None, gt=0)
    step: float | None = None
    pause: bool = False
    reallocate: bool = False
    inverse_vol: bool = Field(False, description="weight ∝ 1 / volatility of daily PnL, mean 1")
    tilt: bool = Field(False, description="size = shrunk Sharpe ÷ desk mean where the guard passes, else default")
    min_change: float = Field(0.0, ge=0, lt=1, description="dead band: relative change below this is not proposed")

    @model_validator(mode="after")
    def _exactly_one(self) -> Action:
        chosen = [k for k in ("set", "scale", "step") if getattr(self, k) is not None]
        chosen += [k for k in ("pause", "reallocate", "inverse_vol", "tilt") if getattr(self, k)]
        if len(chosen) != 1:
            raise ValueError("an action is exactly one of set, scale, step, pause, reallocate, inverse_vol, tilt")
        if chosen[0] in ("set", "scale", "step", "inverse_vol", "tilt") and self.param is None:
            raise ValueError(f"{chosen[0]} needs param")
        return self


class OptimizationRule(_Strict):
    name: Name
    level: Literal["strategy", "book"] = "strategy"
    strategies: list[str] = Field(default_factory=lambda: ["*"])
    window: Window
    when: list[Condition] = Field(min_length=1)
    guard: Guard = Field(default_factory=Guard)
    action: Action
    risk: Literal["low", "medium", "high"]
    summary: str | None = Field(None, max_length=300)

    @model_validator(mode="after")
    def _thompson_is_a_proposal(self) -> OptimizationRule:
        if self.action.reallocate and self.risk == "low":
            raise ValueError("Thompson allocation is a proposal at most: risk medium or high")
        return self


class OptimizationConfig(_Strict):
    parameters: list[Parameter] = Field(default_factory=list)
    guardrails: Guardrails = Field(default_factory=Guardrails)
    store: StoreConfig = Field(default_factory=StoreConfig)
    rules: list[OptimizationRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> OptimizationConfig:
        names = [p.name for p in self.parameters]
        for rule in self.rules:
            param = rule.action.param
            if param is not None and param not in names:
                raise ValueError(f"rule {rule.name!r} changes undeclared parameter {param!r}")
            if rule.action.pause and "enabled" not in names:
                raise ValueError(f"rule {rule.name!r} pauses, which needs a declared bool parameter 'enabled'")
        return self

    def parameter(self, name: str, strategy: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name and p.applies_to(strategy)), None)


def load_optimization(path: str | Path) -> OptimizationConfig:
    return load_model(path, OptimizationConfig, "parameters:, guardrails:, store:, rules:")
