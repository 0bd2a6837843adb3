"""Apply and roll back parameter changes through the guardrails, with the audit trail and `changes` points.

Guardrail memory (last change per target, changes per day) is rebuilt from the audit log, so a
restarted collector or a second process cannot slip past a cooldown or the daily budget.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from collector.model import NS
from collector.optimize.guardrails import Decision, GuardrailBook, GuardrailState
from collector.optimize.rules import OptimizationConfig
from collector.optimize.store import AuditLog, ChangeRecord, ParameterStore, iso_time
from collector.optimize.suggest import Suggestion
from collector.store.lineproto import point
from collector.store.writer import Writer

log = logging.getLogger(__name__)


def record_time_ns(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * NS)


def change_line(record: ChangeRecord, ts_ns: int) -> str:
    """The `changes` point Grafana shows as an annotation."""
    tags = {"strategy": record.strategy, "account": record.account, "param": record.param, "action": record.action}
    fields: dict[str, Any] = {
        "old": float(record.old),
        "new": float(record.new),
        "suggestion_id": record.suggestion_id or record.id,
        "reason": f"{record.rule}: {record.reason}",
        "change_id": record.id,
    }
    return point("changes", tags, fields, ts_ns)


@dataclass
class Outcome:
    decision: Decision
    record: ChangeRecord | None


class Applier:
    def __init__(self, config: OptimizationConfig, writer: Writer | None = None) -> None:
        self.config = config
        push_env = config.store.push_url_env
        self.store = ParameterStore(config.store.path, os.environ.get(push_env) if push_env else None)
        self.audit = AuditLog(config.store.audit)
        self.writer = writer
        self.book = GuardrailBook(config.guardrails, self._state_from_audit())

    def _state_from_audit(self) -> GuardrailState:
        state = GuardrailState()
        book = GuardrailBook(self.config.guardrails, state)
        for record in self.audit.records():
            if record.action in ("apply", "rollback") and record.rule != "manual":
                book.record((record.strategy, record.account, record.param), record_time_ns(record.time))
        return state

    def propose(
        self,
        strategy: str,
        account: str,
        param: str,
        proposed: float | bool,
        *,
        risk: str,
        rule: str,
        reason: str,
        now_ns: int,
        evidence: dict[str, Any] | None = None,
        suggestion_id: str = "",
    ) -> Outcome:
        parameter = self.config.parameter(param, strategy)
        if parameter is None:
            return Outcome(Decision(False, None, f"{param} is not declared for {strategy}"), None)
        old = self.store.get(strategy, account, param, parameter.default)
        target = (strategy, account, param)
        decision = self.book.decide(parameter, target, old, proposed, risk, now_ns)
        if not decision.applied and not decision.dry_run:
            log.debug("not applied: %s %s %s → %s: %s", strategy, account, param, proposed, decision.reason)
            return Outcome(decision, None)
        assert decision.value is not None
        action = "apply" if decision.applied else "dry-run"
        record = ChangeRecord(
            strategy,
            account,
            param,
            old,
            decision.value,
            action,
            rule,
            reason + _note(decision),
            evidence or {},
            suggestion_id,
            time=iso_time(now_ns),
        )
        if decision.applied:
            self.store.set(strategy, account, param, decision.value)
            self.book.record(target, now_ns)
            self._emit(record, now_ns)
        self.audit.append(record)
        log.info("%s %s/%s %s: %s → %s (%s)", action, strategy, account, param, old, decision.value, rule)
        return Outcome(decision, record)

    def propose_suggestion(self, suggestion: Suggestion, now_ns: int, account: str | None = None) -> Outcome:
        """A suggestion through the guardrails (to `account` instead of its own, e.g. a canary)."""
        return self.propose(
            suggestion.strategy,
            account or suggestion.account,
            suggestion.param,
            suggestion.new,
            risk=suggestion.risk,
            rule=suggestion.rule,
            reason=suggestion.rationale,
            now_ns=now_ns,
            evidence={k: v for k, v in suggestion.evidence.items() if isinstance(v, int | float)},
            suggestion_id=suggestion.id,
        )

    def rollback(self, change_id: str, *, reason: str, now_ns: int, automatic: bool = False) -> Outcome:
        """Restore the value a change replaced (people: any time; automatic: through the guardrails)."""
        original = self.audit.find(change_id)
        if original is None or original.action != "apply":
            return Outcome(Decision(False, None, f"no applied change {change_id}"), None)
        if any(r.rolls_back == change_id for r in self.audit.records()):
            return Outcome(Decision(False, None, f"change {change_id} was already rolled back"), None)
        parameter = self.config.parameter(original.param, original.strategy)
        assert parameter is not None
        target = (original.strategy, original.account, original.param)
        current = self.store.get(original.strategy, original.account, original.param, parameter.default)
        decision = self.book.decide(parameter, target, current, original.old, "low", now_ns, automatic=automatic)
        if not decision.applied:
            return Outcome(decision, None)
        assert decision.value is not None
        record = ChangeRecord(
            original.strategy,
            original.account,
            original.param,
            current,
            decision.value,
            "rollback",
            original.rule if automatic else "manual",
            reason + _note(decision),
            {"rolled_back": change_id},
            original.suggestion_id,
            time=iso_time(now_ns),
            rolls_back=change_id,
        )
        self.store.set(original.strategy, original.account, original.param, decision.value)
        if automatic:
            self.book.record(target, now_ns)
        self._emit(record, now_ns)
        self.audit.append(record)
        return Outcome(decision, record)

    def restore_default(self, strategy: str, account: str, param: str, rule: str, reason: str, now_ns: int) -> Outcome:
        """Put a parameter back to its declared default (a disabled rule's values; bounds still apply)."""
        parameter = self.config.parameter(param, strategy)
        if parameter is None:
            return Outcome(Decision(False, None, f"{param} is not declared for {strategy}"), None)
        current = self.store.get(strategy, account, param, parameter.default)
        decision = self.book.decide(
            parameter, (strategy, account, param), current, parameter.default, "low", now_ns, automatic=False
        )
        if not decision.applied or decision.value is None:
            return Outcome(decision, None)
        record = ChangeRecord(
            strategy, account, param, current, decision.value, "rollback", rule, reason, {}, "", time=iso_time(now_ns)
        )
        self.store.set(strategy, account, param, decision.value)
        self._emit(record, now_ns)
        self.audit.append(record)
        return Outcome(decision, record)

    def disabled_rules(self) -> set[str]:
        """Rules the evaluation disabled (their pooled contribution was negative with confidence)."""
        return {r.rule for r in self.audit.records() if r.action == "disable"}

    def change_days(self) -> dict[str, list[int]]:
        """Per strategy, the UTC days changes were applied or rolled back (configurations tried)."""
        days: dict[str, list[int]] = {}
        for record in self.audit.records():
            if record.action in ("apply", "rollback"):
                days.setdefault(record.strategy, []).append(record_time_ns(record.time) // (86_400 * NS))
        return days

    def _emit(self, record: ChangeRecord, now_ns: int) -> None:
        if self.writer is not None:
            self.writer.write(change_line(record, now_ns))


def _note(decision: Decision) -> str:
    return f" ({decision.reason})" if decision.reason else ""
