"""An offline check of Grafana alerting provisioning files, mirroring Grafana's own file rules.

From pkg/services/provisioning/alerting (rules_types.go, contact_point_types.go,
notification_policy_types.go), pkg/services/provisioning/values (env expansion) and the
receivers' config validation in grafana/alerting (receivers/{slack,webhook,email}/v1/config.go).
Contact point settings are checked as Grafana sees them: after `$VAR` expansion in the
environment Grafana runs with (empty by default: an unset variable expands to ""), because an
invalid receiver aborts Grafana's start-up. Returns a list of problems (empty = valid).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from collector.grafana.names import DATASOURCE_UID

_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
NO_DATA_STATES = {"NoData", "Alerting", "OK", "KeepLast"}
EXEC_ERR_STATES = {"Error", "Alerting", "OK", "KeepLast"}
THRESHOLD_TYPES = {"gt", "lt", "within_range", "outside_range"}  # Grafana 11 (no gte/lte/eq yet)
REDUCERS = {"last", "mean", "min", "max", "sum", "count"}
MAX_RULES_PER_GROUP = 100


def duration_seconds(text: Any) -> float | None:
    """Seconds of a Prometheus duration (`10s`, `1m30s`); None when it is not one."""
    if not isinstance(text, str) or not _DURATION.match(text):
        return None
    return sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text))


def _unescaped_dollar(value: str) -> bool:
    """A `$` that provisioning would expand (`$$` is a literal dollar)."""
    return "$" in value.replace("$$", "")


_SETTING_VAR = re.compile(r"\$__(env|file|vault)\{([^}]*)\}")
_SHELL_VAR = re.compile(r"\$(?:\{([^}]*)\}|([A-Za-z0-9_]+)|([*#$@!?-]))")
SLACK_API = "https://slack.com/api/chat.postMessage"


def expand(value: str, environ: Mapping[str, str]) -> str:
    """What Grafana's provisioning makes of a string: split on `$$` (a literal `$`), then in each part
    `$__env{X}` / `$__file{path}` (setting.ExpandVar) and `$X` / `${X}` (os.ExpandEnv: unset → "").
    A secret file cannot be read offline, so `$__file{…}` stands for a non-empty value."""

    def setting(match: re.Match[str]) -> str:
        kind, name = match.groups()
        return environ.get(name, "") if kind == "env" else f"<{kind} {name}>"

    def shell(match: re.Match[str]) -> str:
        return environ.get(next(group for group in match.groups() if group is not None), "")

    return "$".join(_SHELL_VAR.sub(shell, _SETTING_VAR.sub(setting, part)) for part in value.split("$$"))


def _expanded(value: Any, environ: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return expand(value, environ)
    if isinstance(value, dict):
        return {key: _expanded(item, environ) for key, item in value.items()}
    if isinstance(value, list):
        return [_expanded(item, environ) for item in value]
    return value


def check_directory(
    directory: Path, datasource_uids: set[str] | None = None, environ: Mapping[str, str] | None = None
) -> list[str]:
    """Problems in every provisioning file of an alerting directory (not recursive, like Grafana).

    `environ` is the environment Grafana expands contact point settings in (default: empty)."""
    uids = datasource_uids or {DATASOURCE_UID}
    env = environ or {}
    problems: list[str] = []
    documents: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.iterdir()):
        if path.is_dir():
            problems.append(f"{path.name}: subdirectories are not read by Grafana")
            continue
        if path.suffix not in (".yaml", ".yml", ".json"):
            problems.append(f"{path.name}: invalid suffix (.yaml, .yml, .json accepted)")
            continue
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("apiVersion") != 1:
            problems.append(f"{path.name}: expected a mapping with apiVersion: 1")
            continue
        documents[path.name] = data
    contact_names = {
        point.get("name")
        for data in documents.values()
        for point in data.get("contactPoints", []) or []
        if isinstance(point, dict)
    }
    mute_names = {mute.get("name") for data in documents.values() for mute in data.get("muteTimes", []) or []}
    rule_uids: set[str] = set()
    receiver_uids: set[str] = set()
    for name, data in documents.items():
        for group in data.get("groups", []) or []:
            problems += _check_group(name, group, uids, contact_names, rule_uids)
        for point in data.get("contactPoints", []) or []:
            problems += _check_contact_point(name, point, receiver_uids, env)
        for policy in data.get("policies", []) or []:
            problems += _check_route(name, policy, contact_names, mute_names, root=True)
        for template in data.get("templates", []) or []:
            if not template.get("name") or not isinstance(template.get("template"), str):
                problems.append(f"{name}: a template needs name and template")
    return problems


def _check_group(file: str, group: dict[str, Any], uids: set[str], contacts: set[Any], seen: set[str]) -> list[str]:
    where = f"{file}: group {group.get('name')!r}"
    problems = []
    for key in ("name", "folder", "interval"):
        if not group.get(key):
            problems.append(f"{where}: rule group has no {key} set")
    interval = duration_seconds(group.get("interval"))
    if interval is None or interval <= 0 or interval % 10:
        problems.append(f"{where}: interval {group.get('interval')!r} must be a non-zero multiple of 10s")
    rules = group.get("rules") or []
    if len(rules) > MAX_RULES_PER_GROUP:
        problems.append(f"{where}: {len(rules)} rules; Grafana's default quota is {MAX_RULES_PER_GROUP} per group")
    for rule in rules:
        problems += _check_rule(f"{where} rule {rule.get('uid')!r}", rule, uids, contacts, seen)
    return problems


def _check_rule(where: str, rule: dict[str, Any], uids: set[str], contacts: set[Any], seen: set[str]) -> list[str]:
    problems = []
    for key in ("uid", "title", "condition", "data"):
        if not rule.get(key):
            problems.append(f"{where}: {key} is required")
    uid = str(rule.get("uid", ""))
    if len(uid) > 40 or not re.fullmatch(r"[A-Za-z0-9_-]+", uid or "-"):
        problems.append(f"{where}: uid must be ≤ 40 characters of letters, digits, - and _")
    if uid in seen:
        problems.append(f"{where}: duplicate uid")
    seen.add(uid)
    data = rule.get("data") or []
    ref_ids = [query.get("refId") for query in data]
    if rule.get("condition") not in ref_ids:
        problems.append(f"{where}: condition {rule.get('condition')!r} is not one of the refIds {ref_ids}")
    for key, allowed in (("noDataState", NO_DATA_STATES), ("execErrState", EXEC_ERR_STATES)):
        if key in rule and rule[key] not in allowed:
            problems.append(f"{where}: {key} {rule[key]!r} not in {sorted(allowed)}")
    if ("dashboardUid" in rule) != ("panelId" in rule):  # ngalert rejects one without the other
        problems.append(f"{where}: dashboardUid and panelId must be set together")
    if "for" in rule and duration_seconds(rule["for"]) is None:
        problems.append(f"{where}: for {rule['for']!r} is not a duration")
    for query in data:
        problems += _check_query(where, query, uids, ref_ids)
    for key, value in (rule.get("labels") or {}).items():
        if not isinstance(value, str) or _unescaped_dollar(value):
            problems.append(f"{where}: label {key} = {value!r} would be env-expanded (write $$)")
    settings = rule.get("notification_settings")
    if settings and settings.get("receiver") not in contacts:
        problems.append(f"{where}: notification_settings.receiver is not a provisioned contact point")
    return problems


def _check_query(where: str, query: dict[str, Any], uids: set[str], ref_ids: list[Any]) -> list[str]:
    problems = []
    ref = query.get("refId")
    model = query.get("model") or {}
    source = query.get("datasourceUid")
    if source == "__expr__":
        kind = model.get("type")
        if kind not in ("reduce", "threshold", "math", "resample", "classic_conditions"):
            problems.append(f"{where} {ref}: unknown expression type {kind!r}")
        if kind != "classic_conditions" and str(model.get("expression", "")).lstrip("$") not in ref_ids:
            problems.append(f"{where} {ref}: expression {model.get('expression')!r} names no refId")
        if kind == "reduce" and model.get("reducer") not in REDUCERS:
            problems.append(f"{where} {ref}: reducer {model.get('reducer')!r} not in {sorted(REDUCERS)}")
        if kind == "threshold":
            conditions = model.get("conditions") or []
            if len(conditions) != 1:
                problems.append(f"{where} {ref}: threshold expression requires exactly one condition")
            for condition in conditions:
                evaluator = condition.get("evaluator") or {}
                if evaluator.get("type") not in THRESHOLD_TYPES:
                    problems.append(f"{where} {ref}: evaluator type {evaluator.get('type')!r}")
                if not isinstance(evaluator.get("params"), list) or not evaluator["params"]:
                    problems.append(f"{where} {ref}: evaluator params missing")
    elif source not in uids:
        problems.append(f"{where} {ref}: datasourceUid {source!r} is not a provisioned datasource")
    else:
        if not model.get("rawQuery") or not isinstance(model.get("query"), str):
            problems.append(f"{where} {ref}: an InfluxQL node needs rawQuery: true and query")
        span = query.get("relativeTimeRange") or {}
        if not isinstance(span.get("from"), int) or span.get("from", 0) <= span.get("to", 0):
            problems.append(f"{where} {ref}: relativeTimeRange.from must be seconds > to")
    return problems


def _check_contact_point(file: str, point: dict[str, Any], seen: set[str], environ: Mapping[str, str]) -> list[str]:
    where = f"{file}: contact point {point.get('name')!r}"
    problems = [] if point.get("name") else [f"{where}: name is required"]
    for receiver in point.get("receivers") or []:
        uid = str(receiver.get("uid") or "").strip()
        if not uid:
            problems.append(f"{where}: receiver uid is required")
        elif uid in seen:
            problems.append(f"{where}: duplicate receiver uid {uid}")
        seen.add(uid)
        raw = receiver.get("settings") or {}
        if not raw:
            problems.append(f"{where}: settings must be a non-empty map")
        for key in ("title", "text", "message", "subject"):
            value = raw.get(key)
            if isinstance(value, str) and _unescaped_dollar(value):
                problems.append(f"{where}: {key} has a $ that provisioning would expand (use templates or $$)")
        settings = _expanded(raw, environ)
        problems += [f"{where}: {problem}" for problem in _receiver_problems(str(receiver.get("type")), settings)]
    return problems


def _receiver_problems(kind: str, settings: dict[str, Any]) -> list[str]:
    """The errors grafana/alerting's NewConfig returns for expanded settings (they abort provisioning)."""

    def text(key: str) -> str:
        value = settings.get(key)
        return str(value).strip() if value is not None else ""

    if kind == "slack":
        # an empty url falls back to the chat API, which needs a recipient and a token
        url = text("url") or text("endpointUrl") or SLACK_API
        problems = []
        if url == SLACK_API and not text("recipient"):
            problems.append("slack: recipient must be specified when using the Slack chat API (url is empty)")
        if url == SLACK_API and not text("token"):
            problems.append("slack: token must be specified when using the Slack chat API (url is empty)")
        if text("mentionChannel") not in ("", "here", "channel"):
            problems.append(f"slack: invalid value for mentionChannel: {text('mentionChannel')!r}")
        return problems
    if kind == "webhook":
        problems = [] if text("url") else ["webhook: required field 'url' is not specified"]
        if text("username") and text("password") and text("authorization_credentials"):
            problems.append("webhook: both HTTP Basic Authentication and Authorization Header are set")
        return problems
    if kind == "email" and not text("addresses"):
        return ["email: could not find addresses in settings"]
    return []


def _check_route(
    file: str, route: dict[str, Any], contacts: set[Any], mutes: set[Any], root: bool = False
) -> list[str]:
    where = f"{file}: policy route to {route.get('receiver')!r}"
    problems = []
    if root and not route.get("receiver"):
        problems.append(f"{where}: the root policy needs a receiver")
    if route.get("receiver") and route["receiver"] not in contacts:
        problems.append(f"{where}: receiver is not a provisioned contact point")
    for key in ("group_interval", "repeat_interval"):
        if key in route and not duration_seconds(route[key]):
            problems.append(f"{where}: {key} must be a non-zero duration")
    if "group_wait" in route and duration_seconds(route["group_wait"]) is None:
        problems.append(f"{where}: group_wait must be a duration")
    for name in route.get("mute_time_intervals") or []:
        if name not in mutes:
            problems.append(f"{where}: mute time interval {name!r} is not provisioned")
    for matcher in route.get("object_matchers") or []:
        if not (isinstance(matcher, list) and len(matcher) == 3 and matcher[1] in ("=", "!=", "=~", "!~")):
            problems.append(f"{where}: object_matchers entries are [name, op, value] with op = != =~ !~")
    for child in route.get("routes") or []:
        problems += _check_route(file, child, contacts, mutes)
    return problems


PANEL_TYPES = {"timeseries", "stat", "table", "state-timeline", "row", "barchart", "text", "heatmap", "alertlist"}
NO_QUERIES = {"row", "text", "alertlist"}  # panels that read no datasource
_VARIABLE_USE = re.compile(r"\$(?:\{)?([A-Za-z_][A-Za-z0-9_]*)")
GRAFANA_MACROS = {
    "timeFilter",
    "__interval",
    "__interval_ms",
    "__timeFilter",
    "tag_account",
    "tag_strategy",
    "tag_symbol",
    "tag_rule",
    "tag_instance",
}


def check_dashboard(model: dict[str, Any], expected_uid: str, datasource_uid: str = DATASOURCE_UID) -> list[str]:
    """Structural rules a provisioned dashboard must follow (in lieu of Grafana's loader)."""
    where = f"dashboard {expected_uid}"
    problems = []
    if model.get("uid") != expected_uid:
        problems.append(f"{where}: uid {model.get('uid')!r} is not the stable uid")
    for key in ("__inputs", "__requires", "id"):
        if key in model:
            problems.append(f"{where}: {key} must not be in a provisioned dashboard")
    if not isinstance(model.get("refresh"), str):
        problems.append(f"{where}: refresh must be a string such as '5s'")
    if "1s" not in (model.get("timepicker") or {}).get("refresh_intervals", []):
        problems.append(f"{where}: 1s refresh is not offered")
    variables = {v["name"]: v for v in (model.get("templating") or {}).get("list", [])}
    for name, variable in variables.items():
        query = variable.get("query")
        text = query if isinstance(query, str) else (query or {}).get("query", "")
        if variable.get("type") == "query" and not str(text).startswith("SHOW TAG VALUES"):
            problems.append(f"{where}: variable {name} must come from SHOW TAG VALUES")
        if (variable.get("datasource") or {}).get("uid") != datasource_uid:
            problems.append(f"{where}: variable {name} uses another datasource")
        if variable.get("type") == "query" and (extra := sorted({"auto", "auto_count", "auto_min"} & set(variable))):
            problems.append(f"{where}: variable {name}: {', '.join(extra)} belong to interval variables")
    ids = [panel.get("id") for panel in model.get("panels", [])]
    if len(ids) != len(set(ids)):
        problems.append(f"{where}: panel ids are not unique")
    for panel in model.get("panels", []):
        problems += _check_panel(where, panel, set(variables), datasource_uid)
    for annotation in (model.get("annotations") or {}).get("list", []):
        if (annotation.get("datasource") or {}).get("uid") not in (datasource_uid, "grafana", "-- Grafana --"):
            problems.append(f"{where}: annotation {annotation.get('name')!r} uses another datasource")
        for key in ("query", "textColumn", "tagsColumn"):
            if key in annotation:
                problems.append(f"{where}: annotation {annotation.get('name')!r}: {key} belongs inside target")
        if annotation.get("datasource", {}).get("uid") == datasource_uid and not (annotation.get("target") or {}).get(
            "query"
        ):
            problems.append(f"{where}: annotation {annotation.get('name')!r} has no target.query")
    return problems


def _check_panel(where: str, panel: dict[str, Any], variables: set[str], datasource_uid: str) -> list[str]:
    name = f"{where} panel {panel.get('title')!r}"
    problems = []
    kind = panel.get("type")
    if kind not in PANEL_TYPES:
        problems.append(f"{name}: unknown panel type {kind!r}")
    position = panel.get("gridPos") or {}
    if position.get("x", 0) + position.get("w", 0) > 24 or position.get("h", 0) <= 0:
        problems.append(f"{name}: gridPos {position} does not fit the 24-column grid")
    if kind in NO_QUERIES:
        return problems
    if (panel.get("datasource") or {}).get("uid") != datasource_uid:
        problems.append(f"{name}: datasource must be uid {datasource_uid}")
    if kind in ("timeseries", "stat") and not ((panel.get("fieldConfig") or {}).get("defaults") or {}).get("unit"):
        problems.append(f"{name}: no unit set")
    if panel.get("repeat") and panel["repeat"] not in variables:
        problems.append(f"{name}: repeats over unknown variable {panel['repeat']!r}")
    targets = panel.get("targets") or []
    if not targets:
        problems.append(f"{name}: no queries")
    for target in targets:
        if not target.get("rawQuery") or not target.get("query"):
            problems.append(f"{name}: targets must be raw InfluxQL")
            continue
        for used in _VARIABLE_USE.findall(target["query"]):
            if used not in variables and used not in GRAFANA_MACROS:
                problems.append(f"{name}: query uses undefined variable ${used}")
    return problems
