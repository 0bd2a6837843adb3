"""Grafana alerting provisioning (apiVersion 1 files) generated from rules/alerts.yaml.

Rules Grafana can evaluate itself (a `perf` metric, drawdown_pct, collector health) become an
InfluxQL query + reduce(last) + threshold. Rules only the collector can evaluate (windows,
detectors, staleness) become a rule on the collector's own verdict: the `active` field of the
`alerts` measurement. Either way Grafana shows and routes them.

Routing: rules the collector already notifies (`fast_path`) carry `delivery=collector` and are
routed to a muted route, so nobody is told twice; the others carry `delivery=grafana` and a
`notify` label that the per-notifier routes match, with timings per severity (critical: no
group wait). Secrets appear only as `$VAR` / `$__file{}` references.
"""

from __future__ import annotations

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
from collector.grafana.names import DASHBOARD_OF_LEVEL, DATASOURCE_UID, FOLDER, ORG_ID

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


def rule_query(rule: _Rule) -> tuple[str, int, str, float]:
    """(InfluxQL, lookback seconds, threshold type, threshold value) for one rule."""
    op, value = rule.condition()
    if not rule.grafana_native():
        query = (
            f'SELECT last("active") FROM "alerts" WHERE "rule" = \'{rule.name}\' AND $timeFilter '
            'GROUP BY "level", "account", "strategy"'
        )
        return query, 7 * 86_400, "gt", 0.0
    if isinstance(rule, ProposalRule):
        risks = "|".join(rule.risks)
        query = (
            f'SELECT count("confidence") FROM "suggestions" WHERE "status" = \'proposed\' AND "level" = '
            f'\'{rule.level}\' AND "risk" =~ /^({risks})$/ AND $timeFilter GROUP BY "account", "strategy"'
        )
        return query, int(rule.lookback), "gt", 0.0
    if isinstance(rule, HealthRule):
        query = f'SELECT last("{rule.metric}") FROM "collector" WHERE $timeFilter GROUP BY "instance"'
        lookback = 300
    else:
        assert isinstance(rule, DrawdownRule | ThresholdRule)
        metric = "drawdown_pct" if isinstance(rule, DrawdownRule) else rule.metric
        query = (
            f'SELECT last("{metric}") FROM "perf" WHERE {_where(rule)} AND $timeFilter GROUP BY "account", "strategy"'
        )
        lookback = 3600
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


def _summary(rule: _Rule) -> str:
    where = "{{ $labels.instance }}" if rule.level == "collector" else "{{ $labels.account }}/{{ $labels.strategy }}"
    return f"{rule.summary or rule.name} on {rule.level} {where}: {{{{ $values.B.Value }}}}"


def alert_rule(rule: _Rule) -> dict[str, Any]:
    query, lookback, threshold_type, threshold = rule_query(rule)
    dashboard = DASHBOARD_OF_LEVEL[rule.level]
    link = f"/d/{dashboard}?var-account={{{{ $labels.account }}}}&var-strategy={{{{ $labels.strategy }}}}"
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
        "dashboardUid": dashboard,
        "noDataState": "OK",
        "execErrState": "Error",
        # the collector already applied `for` to its own verdicts; Grafana applies it to what it evaluates
        "for": format_duration(rule.for_) if rule.grafana_native() else "0s",
        "labels": _labels(rule),
        "annotations": {
            "summary": _summary(rule),
            "description": f"{rule.describe()} ({rule.kind} rule {rule.name} in rules/alerts.yaml)",
            "dashboard_url": link if rule.level != "collector" else f"/d/{dashboard}",
        },
        "isPaused": False,
    }


def rule_groups(rules: AlertRules) -> dict[str, Any]:
    groups = []
    for severity in ("critical", "warning", "info"):
        members = [alert_rule(rule) for rule in rules.rules if rule.grafana and rule.severity == severity]
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


def contact_points(rules: AlertRules) -> dict[str, Any]:
    points = []
    for name, notifier in rules.notifiers.items():
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


def policies(rules: AlertRules) -> dict[str, Any]:
    names = list(rules.notifiers)
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


def alerting_files(rules: AlertRules) -> dict[str, dict[str, Any]]:
    """File name → content of provisioning/alerting/."""
    files = {"stratmon-rules.yaml": rule_groups(rules), "stratmon-templates.yaml": templates()}
    if rules.notifiers:
        files["stratmon-contact-points.yaml"] = contact_points(rules)
        files["stratmon-policies.yaml"] = policies(rules)
    return files
