"""What every notifier shares: the message it sends, its interface, secrets, error classes."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from collector.alerts.evaluator import AlertEvent


class NotifyError(Exception):
    """A failed send; `retryable` for network errors, timeouts, 429 and 5xx."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class MissingSecret(Exception):
    """A notifier's URL/password is not set: the notifier is disabled (the collector keeps running)."""


@dataclass
class Notification:
    """One message: a group of alert events of one rule, plus how many were held back by the rate limit."""

    rule: str
    severity: str
    status: str  # firing | resolved (a group with any firing event is firing)
    events: list[AlertEvent]
    suppressed: int = 0
    title: str = field(init=False)

    def __post_init__(self) -> None:
        count = f" ({len(self.events)} series)" if len(self.events) > 1 else ""
        self.title = f"[{self.status.upper()}] {self.severity}: {self.rule}{count}"

    def lines(self) -> list[str]:
        out = [event.message for event in self.events]
        if self.suppressed:
            out.append(f"({self.suppressed} more notifications of this rule were held back by its rate limit)")
        return out


class Notifier(ABC):
    name: str

    @abstractmethod
    def send(self, notification: Notification) -> None:
        """Deliver once; raise `NotifyError` on failure."""


def secret(name: str, env: str | None, file: Path | None, what: str) -> str:
    """A secret from an environment variable or a file; `MissingSecret` when neither is set."""
    if env and os.environ.get(env, "").strip():
        return os.environ[env].strip()
    if file is not None:
        try:
            value = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise MissingSecret(f"notifier {name}: cannot read {what} from {file}: {exc}") from None
        if value:
            return value
    where = " or ".join(x for x in (env and f"${env}", file and str(file)) if x)
    raise MissingSecret(f"notifier {name}: {what} is not set ({where})")


def status_error(status: int, body: str) -> NotifyError:
    return NotifyError(f"HTTP {status}: {body[:200]}", retryable=status == 429 or status >= 500)
