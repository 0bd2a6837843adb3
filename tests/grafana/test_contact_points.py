"""Contact points exist only for the secrets that are set, and the checker judges them after env expansion.

Grafana expands `$VAR` in contact point settings and then validates each receiver; an invalid one
aborts start-up (grafana#55971). With the default `.env` every notifier secret is empty, so the
rendered alerting directory must hold no contact point at all.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from collector.cli import main
from collector.grafana.build import write_alerting
from collector.grafana.checker import check_directory, expand

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules" / "alerts.yaml"
COMMITTED = ROOT / "grafana" / "provisioning" / "alerting"
SLACK = {"STRATMON_SLACK_WEBHOOK_URL": "http://127.0.0.1:9/services/T/B/x"}
WEBHOOK = {"STRATMON_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook"}
SMTP = {"GF_SMTP_ENABLED": "true", "GF_SMTP_HOST": "127.0.0.1:25"}


def _receivers(directory: Path) -> dict[str, str]:
    path = directory / "stratmon-contact-points.yaml"
    if not path.exists():
        return {}
    points = yaml.safe_load(path.read_text())["contactPoints"]
    return {point["name"]: point["receivers"][0]["type"] for point in points}


def _policy_receivers(directory: Path) -> set[str]:
    def walk(route: dict[str, object]) -> set[str]:
        children = route.get("routes") or []
        assert isinstance(children, list)
        return {str(route["receiver"])} | {name for child in children for name in walk(child)}

    return walk(yaml.safe_load((directory / "stratmon-policies.yaml").read_text())["policies"][0])


def test_the_committed_directory_is_valid_with_an_empty_environment() -> None:
    assert _receivers(COMMITTED) == {}
    assert not (COMMITTED / "stratmon-policies.yaml").exists()
    assert check_directory(COMMITTED, environ={}) == []


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, {}),
        (SLACK, {"stratmon-slack": "slack"}),
        (SLACK | WEBHOOK, {"stratmon-slack": "slack", "stratmon-webhook": "webhook"}),
        (WEBHOOK | {"GF_SMTP_ENABLED": "true"}, {"stratmon-webhook": "webhook"}),  # SMTP on but no host
        (WEBHOOK | {"GF_SMTP_HOST": "127.0.0.1:25"}, {"stratmon-webhook": "webhook"}),  # GF_SMTP_ENABLED=false
        (SLACK | WEBHOOK | SMTP, {"stratmon-slack": "slack", "stratmon-webhook": "webhook", "stratmon-email": "email"}),
        ({"STRATMON_SLACK_WEBHOOK_URL": "  "}, {}),
    ],
)
def test_only_receivers_whose_secrets_are_set(
    tmp_path: Path, environ: dict[str, str], expected: dict[str, str]
) -> None:
    write_alerting(RULES, tmp_path, environ)
    assert _receivers(tmp_path) == expected
    assert check_directory(tmp_path, environ=environ) == []
    if expected:
        assert _policy_receivers(tmp_path) <= set(expected)
    for value in environ.values():  # secrets stay references: the URL itself is never written
        if value.startswith("http"):
            assert value not in "".join(p.read_text() for p in tmp_path.iterdir())


def test_a_secret_that_goes_away_removes_its_contact_point(tmp_path: Path) -> None:
    write_alerting(RULES, tmp_path, SLACK)
    assert _receivers(tmp_path) == {"stratmon-slack": "slack"}
    write_alerting(RULES, tmp_path, {})
    assert _receivers(tmp_path) == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stratmon-rules.yaml", "stratmon-templates.yaml"]


def test_the_checker_rejects_what_grafana_rejects_after_expansion(tmp_path: Path) -> None:
    """The receivers as they used to be provisioned: `$VAR` URLs that the default .env leaves empty."""
    write_alerting(RULES, tmp_path, SLACK | WEBHOOK)
    problems = check_directory(tmp_path, environ={})
    assert any("slack: recipient must be specified when using the Slack chat API" in p for p in problems), problems
    assert any("webhook: required field 'url' is not specified" in p for p in problems), problems
    assert check_directory(tmp_path, environ=SLACK) != []  # the webhook URL is still missing
    assert check_directory(tmp_path, environ=SLACK | WEBHOOK) == []


def test_expansion_follows_grafana() -> None:
    env = {"A": "x", "B_2": "y"}
    assert expand("$A/${B_2}/$MISSING/end", env) == "x/y//end"
    assert expand("$$A costs $$5", env) == "$A costs $5"
    assert expand("$__env{A}", env) == "x"
    assert expand("$__file{/run/secrets/slack}", {}) != ""  # unreadable offline: counted as set
    assert expand("no variables", {}) == "no variables"


def test_the_alerting_command_renders_for_its_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STRATMON_SLACK_WEBHOOK_URL", "STRATMON_ALERT_WEBHOOK_URL", "GF_SMTP_ENABLED", "GF_SMTP_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STRATMON_ALERT_WEBHOOK_URL", WEBHOOK["STRATMON_ALERT_WEBHOOK_URL"])
    out = tmp_path / "alerting"
    assert main(["grafana", "alerting", "--rules", str(RULES), "--out", str(out)]) == 0
    assert _receivers(out) == {"stratmon-webhook": "webhook"}
    assert _policy_receivers(out) == {"stratmon-webhook"}
