"""The guardrails every automatic change passes, in this order:

global switch → kill-switch file → risk (only `low`) → bounds (clamped) → max step (clamped) →
no-op → per-target cooldown → daily budget → dry run. A change that survives is applied; the
value applied can never be outside the declared bounds or further than `max_step` from the
current value. A person's rollback (`stratmon changes rollback`) skips the automatic-only checks
(switches, risk, cooldown, budget) but not the bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from collector.model import NS
from collector.optimize.rules import Guardrails, Parameter

DAY_NS = 86_400 * NS
Target = tuple[str, str, str]  # strategy, account ("*" = every account), parameter


@dataclass
class Decision:
    applied: bool
    value: float | bool | None  # what would be / was set
    reason: str  # why not applied, or what was adjusted ("" = as proposed)
    dry_run: bool = False
    unchanged: bool = False  # the target already has the (bounded) proposed value: nothing to do


@dataclass
class GuardrailState:
    """What the guardrails remember: last applied time per target, applied count per UTC day."""

    last_applied: dict[Target, int] = field(default_factory=dict)
    per_day: dict[int, int] = field(default_factory=dict)


def bounded(parameter: Parameter, old: float | bool, proposed: float | bool) -> tuple[float | bool, str]:
    """The proposal clamped into [min, max] and to at most `max_step` away from `old`."""
    if parameter.type == "bool":
        return bool(proposed), ""
    assert parameter.min is not None and parameter.max is not None and parameter.max_step is not None
    notes = []
    value = float(proposed)
    if not math.isfinite(value):
        return float(old), "proposal is not a finite number"
    if value < parameter.min or value > parameter.max:
        value = min(max(value, parameter.min), parameter.max)
        notes.append(f"clamped to bounds [{parameter.min:g}, {parameter.max:g}]")
    current = min(max(float(old), parameter.min), parameter.max)  # an old value outside tightened bounds
    if abs(value - current) > parameter.max_step:
        value = current + math.copysign(parameter.max_step, value - current)
        notes.append(f"limited to a step of {parameter.max_step:g}")
    if parameter.type == "int":
        # the nearest integer that is inside the bounds and within max_step of the current value
        # (rounding 2.6 to 3 must not leave bounds [0, 2.6], nor reopen the step)
        low = max(math.ceil(parameter.min), math.ceil(current - parameter.max_step))
        high = min(math.floor(parameter.max), math.floor(current + parameter.max_step))
        if low > high:
            return float(old), "no integer lies inside the bounds within max_step of the current value"
        value = float(min(max(round(value), low), high))
    return value, "; ".join(notes)


class GuardrailBook:
    def __init__(self, config: Guardrails, state: GuardrailState | None = None, switches: bool = True) -> None:
        self.config = config
        self.state = state or GuardrailState()
        self.switches = switches  # False in a replay: the live switches say nothing about the past

    def kill_switch_on(self) -> bool:
        return not self.config.enabled or Path(self.config.kill_switch_file).exists()

    def decide(
        self,
        parameter: Parameter,
        target: Target,
        old: float | bool,
        proposed: float | bool,
        risk: str,
        now_ns: int,
        automatic: bool = True,
    ) -> Decision:
        config = self.config
        if automatic and self.switches:
            if not config.enabled:
                return Decision(False, None, "optimizer disabled (guardrails.enabled: false)")
            if Path(config.kill_switch_file).exists():
                return Decision(False, None, f"kill switch {config.kill_switch_file} is present")
        if automatic and risk != "low":
            return Decision(False, None, f"{risk} risk: a proposal for people, never applied automatically")
        value, note = bounded(parameter, old, proposed)
        if value == old:
            return Decision(False, value, f"no change ({note or 'already at the proposed value'})", unchanged=True)
        if automatic:
            last = self.state.last_applied.get(target)
            if last is not None and now_ns - last < config.cooldown * NS:
                return Decision(False, value, f"cooldown: last change {((now_ns - last) / NS / 3600):.1f} h ago")
            day = now_ns // DAY_NS
            if self.state.per_day.get(day, 0) >= config.daily_budget:
                return Decision(False, value, f"daily budget of {config.daily_budget} changes used")
            if config.dry_run:
                return Decision(False, value, "dry run" + (f"; {note}" if note else ""), dry_run=True)
        return Decision(True, value, note)

    def record(self, target: Target, now_ns: int) -> None:
        """Count an applied change against cooldown and budget."""
        self.state.last_applied[target] = now_ns
        day = now_ns // DAY_NS
        self.state.per_day[day] = self.state.per_day.get(day, 0) + 1
