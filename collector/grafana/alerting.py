"""Grafana alerting provisioning (apiVersion 1 files) generated from rules/alerts.yaml.

Rules Grafana can evaluate itself (a `perf` metric, drawdown_pct, collector health) become an
InfluxQL query + reduce(last) + threshold. Rules only the collector can evaluate (windows,
detectors, staleness) become a rule on the collector's own verdict: the `active` field of the
`alerts` measurement. Either way Grafana shows and routes them.

Staying true: every series gets a `perf` point at least every `run.heartbeat` (60 s of event
time), so a 15-minute range always holds the last value of an idle strategy; when there is no
data at all (collector stopped, desk closed) `KeepLast` keeps the rule where it was instead of
resolving it. Health rules use `NoData`: a silent collector is itself worth an alert.

Routing: rules the collector already notifies (`fast_path`) carry `delivery=collector` and are
routed to a muted route, so nobody is told twice; the others carry `delivery=grafana` and a
`notify` label that the per-notifier routes match, with timings per severity (critical: no
group wait). Secrets appear only as `$VAR` / `$__file{}` references, and a contact point is
provisioned only when its secret is set (`available_notifiers`): Grafana validates contact points
after env expansion and refuses to start on an empty Slack or webhook URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collector.alerts.rules import (
    AlertRules,
    DrawdownRule,
    EmailNotifier,
    HealthRule,
    ProposalRule,
    SlackNotifier,
    ThresholdRule,
    WebhookNotifier,
    _Rule,
    format_duration,
)
from collector.grafana.names import (
    ALERT_PANEL,
    DASHBOARDS,
    DATASOURCE_UID,
    DRAWDOWN_PANEL,
    FOLDER,
    HEALTH_PANEL,
    ORG_ID,
)

GROUP_INTERVAL = {"critical": "10s", "warning": "30s", "info": "1m"}
TIMINGS = {  # group_wait, group_interval, repeat_interval
    "critical": ("0s", "10s", "30m"),
    "warning": ("30s", "5m", "4h"),
    "info": ("1m", "10m", "12h"),
}
MUTED = "stratmon-collector-delivers"
EXPR = {"type": "__expr__", "uid": "__expr__"}
# Grafana 11 thresholds know gt/lt only; ≥ x is > x − ε (exact for the integer counters it is used on).
EPSILON = 1e-9
# 15 heartbeats (run.heartbeat = 60 s): the last point of an idle series is always in range
PERF_LOOKBACK = 900
HEALTH_LOOKBACK = 300  # health points come every 5 s
VERDICT_LOOKBACK = 7 * 86_400  # the collector writes `alerts` points on transitions only
# the tags that identify a series of each level (the others are `_all` or absent)
SERIES_TAGS = {
    "portfolio": (),
    "account": ("account",),
    "strategy": ("strategy",),
    "book": ("account", "strategy"),
    "collector": ("instance",),
}
# dashboard variables an alert link sets, per level
LINK_VARIABLES = {"account": ("account",), "strategy": ("strategy",), "book": ("account", "strategy")}
# statistics that are fractions: messages print them as percentages
FRACTIONS = {"drawdown_pct", "win_rate", "return_cum", "reject_rate"}
TRUE = {"1", "true", "yes", "on"}


def _regex(patterns: list[str]) -> str:
    """An InfluxQL regex (anchored) for fnmatch globs."""
    parts = []
    for pattern in patterns:
        escaped = "".join(
            ".*" if c == "*" else "." if c == "?" else "\\" + c if not (c.isalnum() or c in "_-:") else c
            for c in pattern
        )
        parts.append(escaped.replace("/", "\\/"))
    return "/^(" + "|".join(parts) + ")$/"


def _where(rule: _Rule) -> str:
    clauses = [f"\"level\" = '{rule.level}'"]
    if rule.filter.accounts:
        clauses.append(f'"account" =~ {_regex(rule.filter.accounts)}')
    if rule.filter.strategies:
        clauses.append(f'"strategy" =~ {_regex(rule.filter.strategies)}')
    return " AND ".join(clauses)


def _group_by(level: str) -> str:
    tags = SERIES_TAGS[level]
    return " GROUP BY " + ", ".join(f'"{tag}"' for tag in tags) if tags else ""


def rule_query(rule: _Rule) -> tuple[str, int, str, float]:
    """(InfluxQL, lookback seconds, threshold type, threshold value) for one rule."""
    op, value = rule.condition()
    if not rule.grafana_native():
        query = f'SELECT last("active") FROM "alerts" WHERE "rule" = \'{rule.name}\' AND $timeFilter' + _group_by(
            rule.level
        )
        return query, VERDICT_LOOKBACK, "gt", 0.0
    if isinstance(rule, ProposalRule):
        risks = "|".join(rule.risks)
        query = (
            f'SELECT count("confidence") FROM "suggestions" WHERE "status" = \'proposed\' AND "level" = '
            f"'{rule.level}' AND \"risk\" =~ /^({risks})$/ AND $timeFilter" + _group_by(rule.level)
        )
        return query, int(rule.lookback), "gt", 0.0
    if isinstance(rule, HealthRule):
        query = f'SELECT last("{rule.metric}") FROM "collector" WHERE $timeFilter' + _group_by("collector")
        lookback = HEALTH_LOOKBACK
    else:
        assert isinstance(rule, DrawdownRule | ThresholdRule)
        query = f'SELECT last("{_metric(rule)}") FROM "perf" WHERE {_where(rule)} AND $timeFilter' + _group_by(
            rule.level
        )
        lookback = PERF_LOOKBACK
    if op == "ge":
        return query, lookback, "gt", value - EPSILON
    if op == "le":
        return query, lookback, "lt", value + EPSILON
    return query, lookback, op, value


def _labels(rule: _Rule) -> dict[str, str]:
    labels = {"severity": rule.severity, "level": rule.level, "rule": rule.name, "source": "stratmon"}
    if rule.fast_path:
        labels["delivery"] = "collector"
    else:
        labels["delivery"] = "grafana"
        labels["notify"] = ",".join(rule.notify)
    return labels


def _metric(rule: _Rule) -> str:
    """The statistic a Grafana-native rule compares (a `perf` or `collector` field, or a count)."""
    if isinstance(rule, DrawdownRule):
        return "drawdown_pct"
    if isinstance(rule, ThresholdRule | HealthRule):
        return rule.metric
    return "count"


def _summary(rule: _Rule) -> str:
    """`<summary> on strategy mm_es: 2.4%`: only the tags the level has; fractions as percentages."""
    text = (
        (rule.summary or rule.name)
        + f" on {rule.level}"
        + "".join(f" {{{{ $labels.{tag} }}}}" for tag in SERIES_TAGS[rule.level])
    )
    if not rule.grafana_native():
        return text  # the value is the collector's verdict (1 = firing); its own message carries the number
    value = "$values.B.Value"
    shown = f"humanizePercentage {value}" if _metric(rule) in FRACTIONS else value
    return f"{text}: {{{{ {shown} }}}}"


def alert_panel(rule: _Rule) -> tuple[str, str]:
    """(dashboard key, panel title) of the panel that shows what the rule watches."""
    if isinstance(rule, DrawdownRule) and rule.level in DRAWDOWN_PANEL:
        return DRAWDOWN_PANEL[rule.level]
    if isinstance(rule, HealthRule):
        return "health", HEALTH_PANEL[rule.metric]
    return ALERT_PANEL[rule.level]


def dashboard_link(rule: _Rule) -> str:
    """An absolute link (Grafana's root_url, GF_SERVER_ROOT_URL) to the panel, with the alert's series selected."""
    key, _ = alert_panel(rule)
    query = "&".join(f"var-{tag}={{{{ $labels.{tag} }}}}" for tag in LINK_VARIABLES.get(rule.level, ()))
    base = '{{ reReplaceAll "/$" "" externalURL }}'  # root_url may or may not end in /
    return f"{base}/d/{DASHBOARDS[key]}" + (f"?{query}" if query else "")


def alert_rule(rule: _Rule, panels: Mapping[str, int]) -> dict[str, Any]:
    """One provisioned rule; `panels` maps "dashboard key/panel title" to the panel id the alert shows."""
    query, lookback, threshold_type, threshold = rule_query(rule)
    key, title = alert_panel(rule)
    return {
        "uid": f"stratmon-{rule.name}"[:40],
        "title": rule.summary or rule.name,
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": lookback, "to": 0},
                "datasourceUid": DATASOURCE_UID,
                "model": {
                    "refId": "A",
                    "rawQuery": True,
                    "resultFormat": "time_series",
                    "query": query,
                    "intervalMs": 1000,
                    "maxDataPoints": 43200,
                },
            },
            {
                "refId": "B",
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "B",
                    "type": "reduce",
                    "expression": "A",
                    "reducer": "last",
                    "settings": {"mode": "dropNN"},
                    "datasource": EXPR,
                },
            },
            {
                "refId": "C",
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "C",
                    "type": "threshold",
                    "expression": "B",
                    "conditions": [{"evaluator": {"type": threshold_type, "params": [threshold]}}],
                    "datasource": EXPR,
                },
            },
        ],
        "dashboardUid": DASHBOARDS[key],
        "panelId": panels[f"{key}/{title}"],
        "noDataState": "NoData" if isinstance(rule, HealthRule) else "KeepLast",
        "execErrState": "Error",
        # the collector already applied `for` to its own verdicts; Grafana applies it to what it evaluates
        "for": format_duration(rule.for_) if rule.grafana_native() else "0s",
        "labels": _labels(rule),
        "annotations": {
            "summary": _summary(rule),
            "description": f"{rule.describe()} ({rule.kind} rule {rule.name} in rules/alerts.yaml)",
            "dashboard_url": dashboard_link(rule),
        },
        "isPaused": False,
    }


def rule_groups(rules: AlertRules, panels: Mapping[str, int]) -> dict[str, Any]:
    groups = []
    for severity in ("critical", "warning", "info"):
        members = [alert_rule(rule, panels) for rule in rules.rules if rule.grafana and rule.severity == severity]
        if members:
            groups.append(
                {
                    "orgId": ORG_ID,
                    "name": f"stratmon-{severity}",
                    "folder": FOLDER,
                    "interval": GROUP_INTERVAL[severity],
                    "rules": members,
                }
            )
    return {"apiVersion": 1, "groups": groups}


def _secret_ref(env: str | None, file: Any) -> str:
    return f"$__file{{{file}}}" if file is not None else f"${env}"


def available_notifiers(rules: AlertRules, environ: Mapping[str, str]) -> list[str]:
    """The notifiers Grafana can use in this environment: Slack/webhook with their URL set (variable non-empty,
    or a secret file), email only with Grafana's SMTP enabled (GF_SMTP_ENABLED, GF_SMTP_HOST)."""
    names = []
    for name, notifier in rules.notifiers.items():
        if isinstance(notifier, EmailNotifier):
            usable = environ.get("GF_SMTP_ENABLED", "").strip().lower() in TRUE and bool(environ.get("GF_SMTP_HOST"))
        else:
            usable = notifier.url_file is not None or bool(environ.get(notifier.url_env, "").strip())
        if usable:
            names.append(name)
    return names


def contact_points(rules: AlertRules, names: list[str]) -> dict[str, Any]:
    points = []
    for name in names:
        notifier = rules.notifiers[name]
        settings: dict[str, Any]
        if isinstance(notifier, SlackNotifier):
            kind = "slack"
            settings = {
                "url": _secret_ref(notifier.url_env, notifier.url_file),
                "title": '{{ template "stratmon.title" . }}',
                "text": '{{ template "stratmon.body" . }}',
            }
        elif isinstance(notifier, WebhookNotifier):
            kind = "webhook"
            settings = {"url": _secret_ref(notifier.url_env, notifier.url_file), "httpMethod": "POST"}
        else:
            assert isinstance(notifier, EmailNotifier)
            kind = "email"
            settings = {
                "addresses": ";".join(notifier.to),
                "singleEmail": True,
                "subject": '{{ template "stratmon.title" . }}',
                "message": '{{ template "stratmon.body" . }}',
            }
        points.append(
            {
                "orgId": ORG_ID,
                "name": f"stratmon-{name}",
                "receivers": [
                    {
                        "uid": f"stratmon-{name}-{kind}",
                        "type": kind,
                        "settings": settings,
                        "disableResolveMessage": False,
                    }
                ],
            }
        )
    return {"apiVersion": 1, "contactPoints": points}


def policies(names: list[str]) -> dict[str, Any]:
    default = f"stratmon-{'email' if 'email' in names else names[0]}"
    routes: list[dict[str, Any]] = [
        {
            "receiver": default,
            "object_matchers": [["delivery", "=", "collector"]],
            "mute_time_intervals": [MUTED],
            "continue": False,
        }
    ]
    for name in names:
        routes.append(
            {
                "receiver": f"stratmon-{name}",
                "object_matchers": [["notify", "=~", f"(.*,)?{name}(,.*)?"]],
                "group_by": ["alertname", "rule", "account", "strategy"],
                "continue": True,
                "routes": [
                    {
                        "receiver": f"stratmon-{name}",
                        "object_matchers": [["severity", "=", severity]],
                        "group_wait": wait,
                        "group_interval": interval,
                        "repeat_interval": repeat,
                    }
                    for severity, (wait, interval, repeat) in TIMINGS.items()
                ],
            }
        )
    return {
        "apiVersion": 1,
        "policies": [
            {
                "orgId": ORG_ID,
                "receiver": default,
                "group_by": ["grafana_folder", "alertname"],
                "group_wait": "30s",
                "group_interval": "5m",
                "repeat_interval": "4h",
                "routes": routes,
            }
        ],
        "muteTimes": [
            {"orgId": ORG_ID, "name": MUTED, "time_intervals": [{"weekdays": ["monday:sunday"]}]},
        ],
    }


TEMPLATE = """\
{{ define "stratmon.title" }}[{{ .Status | toUpper }}] {{ .CommonLabels.severity }}: \
{{ .CommonLabels.alertname }}{{ end }}
{{ define "stratmon.body" }}{{ range .Alerts }}- {{ .Annotations.summary }}
  {{ .Annotations.description }}{{ if .Annotations.dashboard_url }}
  {{ .Annotations.dashboard_url }}{{ end }}
{{ end }}{{ end }}
"""


def templates() -> dict[str, Any]:
    return {"apiVersion": 1, "templates": [{"orgId": ORG_ID, "name": "stratmon", "template": TEMPLATE}]}


def alerting_files(
    rules: AlertRules, panels: Mapping[str, int], environ: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """File name → content of provisioning/alerting/, with contact points and policies only for the notifiers
    `environ` makes usable (none for the committed build, which uses an empty environment)."""
    files = {"stratmon-rules.yaml": rule_groups(rules, panels), "stratmon-templates.yaml": templates()}
    if names := available_notifiers(rules, environ):
        files["stratmon-contact-points.yaml"] = contact_points(rules, names)
        files["stratmon-policies.yaml"] = policies(names)
    return files
