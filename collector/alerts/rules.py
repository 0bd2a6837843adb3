"""`rules/alerts.yaml`: alert rules and notifiers as validated data (conditions are never code).

Every rule reduces to "statistic  op  threshold" on one series (a book, strategy, account, the
portfolio, or the collector itself); its `kind` says which statistic. Errors name the file, the
line, the key and what was expected.
"""

from __future__ import annotations

import fnmatch
import re
from abc import ABC, abstractmethod
from datetime import time as clock_time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from collector.alerts.detectors import WINDOWED_METRICS
from collector.engine.series import ALL, METRIC_FIELDS
from collector.yamlfile import load_model

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
OPS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
MAX_DURATION_S = 366 * 86_400.0  # longer is a typo (99999999999d would overflow timers)
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _weekdays() -> list[Day]:
    return ["mon", "tue", "wed", "thu", "fri"]


def parse_duration(value: Any) -> float:
    """Seconds from `30s`, `5m`, `1h`, `1d`, `250ms` or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration such as 30s, 5m, 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value).strip())
        if match is None:
            raise ValueError("a duration such as 30s, 5m, 1h or 250ms")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not 0 <= seconds <= MAX_DURATION_S:  # also refuses NaN
        raise ValueError(f"a duration between 0 and {MAX_DURATION_S / 86_400:g}d")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest `Ns`/`Nm`/`Nh` form (Grafana's Prometheus-style durations)."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[float, BeforeValidator(parse_duration)]
Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)  # thresholds finite


class Filter(_Strict):
    """Which series a rule watches: account/strategy names or globs (empty = all)."""

    accounts: list[str] = Field(default_factory=list)
    strategies: list[str] = Field(default_factory=list)

    def matches(self, account: str, strategy: str) -> bool:
        return _matches(self.accounts, account) and _matches(self.strategies, strategy)


def _matches(patterns: list[str], name: str) -> bool:
    if not patterns or name == ALL:
        return True
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


class RateLimit(_Strict):
    count: int = Field(5, ge=1, description="notifications per rule")
    per: Duration = Field(600.0, description="within this long")


Level = Literal["book", "strategy", "account", "portfolio", "collector"]


class _Rule(_Strict, ABC):
    kind: str
    name: Name
    level: Level
    filter: Filter = Field(default_factory=Filter)
    severity: Literal["info", "warning", "critical"] = "warning"
    for_: Duration = Field(0.0, alias="for", description="how long the condition must hold before firing")
    keep_firing_for: Duration = Field(0.0, description="how long it must be clear before resolving")
    notify: list[str] = Field(default_factory=list, description="notifier names")
    fast_path: bool = Field(False, description="send notifications from the collector (sub-second)")
    grafana: bool = Field(True, description="also provision a Grafana alert rule")
    summary: str | None = Field(None, max_length=300)
    group_interval: Duration | None = Field(
        None, description="fast path: this rule's grouping window (default: defaults.group_interval)"
    )

    @model_validator(mode="after")
    def _collector_level_is_for_health(self) -> _Rule:
        if (self.level == "collector") != (self.kind == "health"):
            raise ValueError("level collector goes with kind health (and only there)")
        return self

    @abstractmethod
    def condition(self) -> tuple[str, float]:
        """(op, threshold) the statistic is compared with."""

    def grafana_native(self) -> bool:
        """Whether Grafana can evaluate the rule itself from perf/collector points."""
        return self.kind in GRAFANA_NATIVE

    def describe(self) -> str:
        op, threshold = self.condition()
        return f"{self.statistic_name()} {OPS[op]} {threshold:g}"

    def statistic_name(self) -> str:
        return self.kind


class ThresholdRule(_Rule):
    """Any `perf` metric (current value), or a trade metric over the last `window_trades` round trips."""

    kind: Literal["threshold"]
    metric: str
    op: Literal["gt", "ge", "lt", "le"]
    value: float
    window_trades: int | None = Field(None, ge=2, le=100_000)

    @model_validator(mode="after")
    def _known_metric(self) -> ThresholdRule:
        if self.window_trades is not None:
            if self.metric not in WINDOWED_METRICS:
                raise ValueError(f"window_trades works with {', '.join(WINDOWED_METRICS)}; not {self.metric!r}")
        elif self.metric not in METRIC_FIELDS:
            raise ValueError(f"metric {self.metric!r} is not a perf field ({', '.join(METRIC_FIELDS)})")
        return self

    def condition(self) -> tuple[str, float]:
        return self.op, self.value

    def statistic_name(self) -> str:
        return self.metric if self.window_trades is None else f"{self.metric} (last {self.window_trades} trades)"

    def grafana_native(self) -> bool:
        return self.window_trades is None


class DrawdownRule(_Rule):
    """Drawdown as a fraction of the series' peak NAV (capital base + peak equity), as the perf field."""

    kind: Literal["drawdown_pct"]
    threshold: float = Field(gt=0, lt=10)

    def condition(self) -> tuple[str, float]:
        return "gt", self.threshold


class SharpeRule(_Rule):
    """Sharpe (annualized) or PSR of the last `window_days` daily returns below a value."""

    kind: Literal["sharpe"]
    statistic: Literal["sharpe", "psr"] = "sharpe"
    below: float
    window_days: int = Field(20, ge=3, le=1000)
    min_days: int = Field(10, ge=3)
    benchmark_sharpe: float = Field(0.0, description="PSR only: the annualized Sharpe to beat")

    def condition(self) -> tuple[str, float]:
        return "lt", self.below

    def statistic_name(self) -> str:
        return f"{self.statistic} ({self.window_days}d)"


class SlippageRule(_Rule):
    """A fill whose slippage is far outside the series' own recent slippage (robust z-score)."""

    kind: Literal["slippage_anomaly"]
    z: float = Field(4.0, gt=0)
    window: int = Field(200, ge=10, le=100_000)
    min_samples: int = Field(30, ge=5)

    def condition(self) -> tuple[str, float]:
        return "gt", self.z

    def statistic_name(self) -> str:
        return "slippage robust z"


class DegradationRule(_Rule):
    """A drop in per-round-trip net PnL: CUSUM (in σ of the baseline) or Page-Hinkley (currency)."""

    kind: Literal["degradation"]
    method: Literal["cusum", "page_hinkley"] = "cusum"
    threshold: float = Field(5.0, gt=0, description="CUSUM: h in σ; Page-Hinkley: λ in currency")
    warmup: int = Field(30, ge=5, description="round trips that form the baseline")
    slack: float = Field(0.5, ge=0, description="CUSUM k in σ")
    delta: float = Field(0.005, ge=0, description="Page-Hinkley δ")

    def condition(self) -> tuple[str, float]:
        return "gt", self.threshold

    def statistic_name(self) -> str:
        return f"{self.method} statistic"


class LossStreakRule(_Rule):
    """A run of losing round trips improbable under the series' own loss rate: q^L below `probability`.

    q = (losses + 1) / (trades + 2) over the series' history, L the current loss streak: a series
    that loses half its trades alerts at a longer streak than one that rarely loses.
    """

    kind: Literal["loss_streak"]
    probability: float = Field(0.001, gt=0, lt=1)
    min_trades: int = Field(30, ge=1, description="round trips before the loss rate is trusted")
    min_streak: int = Field(3, ge=1, description="never alert on a shorter streak")

    def condition(self) -> tuple[str, float]:
        return "lt", self.probability

    def statistic_name(self) -> str:
        return "chance of the loss streak"


class TradingHours(_Strict):
    start: clock_time = clock_time(0, 0)
    end: clock_time = clock_time(23, 59, 59)
    days: list[Day] = Field(default_factory=_weekdays)


class StalenessRule(_Rule):
    """No fills from a series for `minutes` while inside trading hours (UTC)."""

    kind: Literal["staleness"]
    minutes: float = Field(gt=0)
    hours: TradingHours = Field(default_factory=TradingHours)

    def condition(self) -> tuple[str, float]:
        return "ge", self.minutes

    def statistic_name(self) -> str:
        return "minutes since the last fill"


class OpportunityRule(_Rule):
    """A series whose recent PSR is high: a candidate for more capital (info)."""

    kind: Literal["opportunity"]
    psr_above: float = Field(0.95, gt=0, lt=1)
    window_days: int = Field(20, ge=3, le=1000)
    min_days: int = Field(10, ge=3)
    benchmark_sharpe: float = 1.0
    severity: Literal["info", "warning", "critical"] = "info"

    def condition(self) -> tuple[str, float]:
        return "gt", self.psr_above

    def statistic_name(self) -> str:
        return f"PSR vs Sharpe {self.benchmark_sharpe:g} ({self.window_days}d)"


Risk = Literal["low", "medium", "high"]


def _human_risks() -> list[Risk]:
    return ["medium", "high"]


class ProposalRule(_Rule):
    """The optimizer proposed a change it may not apply itself (medium/high risk): someone should look.

    Evaluated by Grafana from the `suggestions` points (the optimizer runs as a job, not on the stream).
    """

    kind: Literal["proposal"]
    level: Literal["strategy", "book"] = "strategy"
    risks: list[Risk] = Field(default_factory=_human_risks)
    lookback: Duration = Field(86_400.0, description="proposals within this long count")
    severity: Literal["info", "warning", "critical"] = "info"

    @model_validator(mode="after")
    def _grafana_only(self) -> ProposalRule:
        if self.fast_path or not self.grafana:
            raise ValueError("proposal rules are evaluated by Grafana: grafana: true and fast_path: false")
        return self

    def condition(self) -> tuple[str, float]:
        return "gt", 0.0

    def statistic_name(self) -> str:
        return "optimizer proposals"


class HealthRule(_Rule):
    """The collector's own health, from its 5-second self-metrics."""

    kind: Literal["health"]
    metric: Literal[
        "reject_rate", "write_errors", "spooled_points", "lag_ms", "latency_p99_ms", "queue_depth", "fills_duplicate"
    ]
    op: Literal["gt", "ge", "lt", "le"] = "gt"
    value: float

    def condition(self) -> tuple[str, float]:
        return self.op, self.value

    def statistic_name(self) -> str:
        return self.metric


Rule = Annotated[
    ThresholdRule
    | DrawdownRule
    | SharpeRule
    | SlippageRule
    | DegradationRule
    | LossStreakRule
    | StalenessRule
    | OpportunityRule
    | HealthRule
    | ProposalRule,
    Field(discriminator="kind"),
]
GRAFANA_NATIVE = ("threshold", "drawdown_pct", "health", "proposal")  # kinds Grafana can evaluate from perf/collector


class SlackNotifier(_Strict):
    type: Literal["slack"]
    url_env: str = Field(description="environment variable holding the incoming-webhook URL")
    url_file: Path | None = None


class WebhookNotifier(_Strict):
    type: Literal["webhook"]
    url_env: str
    url_file: Path | None = None
    hmac_secret_env: str | None = Field(None, description="sign bodies with HMAC-SHA256 (X-Stratmon-Signature)")
    hmac_secret_file: Path | None = None


class EmailNotifier(_Strict):
    type: Literal["email"]
    host: str
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = Field(None, description="CA bundle to verify the server (default: system CAs)")
    sender: str = Field(alias="from", pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)


Notifier = Annotated[SlackNotifier | WebhookNotifier | EmailNotifier, Field(discriminator="type")]


class Grouping(_Strict):
    """How bursts are grouped: the first alert of a rule goes out at once, the rest wait `group_interval`.

    A rule's own `group_interval` overrides the default for that rule.
    """

    group_interval: Duration = 10.0
    retries: int = Field(3, ge=0, le=10)
    timeout: Duration = 10.0


class AlertRules(_Strict):
    notifiers: dict[Name, Notifier] = Field(default_factory=dict)
    defaults: Grouping = Field(default_factory=Grouping)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    rules: list[Rule] = Field(default_factory=list)

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[Rule]) -> list[Rule]:
        names = [rule.name for rule in rules]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"rule names must be unique: {', '.join(dupes)}")
        return rules

    @model_validator(mode="after")
    def _known_notifiers(self) -> AlertRules:
        for rule in self.rules:
            unknown = [name for name in rule.notify if name not in self.notifiers]
            if unknown:
                raise ValueError(f"rule {rule.name!r} notifies unknown notifier(s) {', '.join(unknown)}")
        return self


def load_rules(path: str | Path) -> AlertRules:
    """Load and validate; every mistake is a `UserError` with file:line, key and expectation."""
    return load_model(path, AlertRules, "notifiers:, defaults:, rules:")
