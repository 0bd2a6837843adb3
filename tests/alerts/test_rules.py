"""The rules file: the shipped default validates; mistakes name file, line, key and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.alerts.rules import load_rules, parse_duration
from collector.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
KINDS = {
    "threshold",
    "drawdown_pct",
    "sharpe",
    "loss_streak",
    "slippage_anomaly",
    "degradation",
    "staleness",
    "opportunity",
    "health",
    "proposal",
}


def test_default_rules_cover_every_kind() -> None:
    rules = load_rules(ROOT / "rules" / "alerts.yaml")
    assert {rule.kind for rule in rules.rules} == KINDS
    assert set(rules.notifiers) == {"slack", "webhook", "email"}
    assert any(rule.fast_path for rule in rules.rules) and any(rule.severity == "info" for rule in rules.rules)


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        (
            "rules:\n  - name: a\n    level: book\n    kind: threshold\n    metric: pnl\n    op: gt\n    value: 1\n",
            2,
            ["not a perf field"],
        ),
        ("rules:\n  - name: a\n    level: book\n    kind: thresold\n", 2, ["kind", "threshold"]),
        (
            "rules:\n  - name: a\n    level: book\n    kind: drawdown_pct\n    threshold: lots\n",
            5,
            ["threshold", "lots", "number"],
        ),
        (
            "rules:\n  - name: a\n    level: book\n    kind: drawdown_pct\n    threshold: 0.1\n    for: soon\n",
            6,
            ["for", "duration"],
        ),
        (
            "rules:\n  - name: a\n    level: strategy\n    kind: health\n    metric: lag_ms\n    value: 1\n",
            2,
            ["collector"],
        ),
        ("notifiers:\n  s:\n    type: slack\n    url: https://hooks.slack.com/x\n", 4, ["url", "unknown key"]),
        (
            "rules:\n  - name: a\n    level: book\n    kind: drawdown_pct\n    threshold: 0.1\n    notify: [pager]\n",
            1,
            ["pager"],
        ),
        ("rules:\n  - name: Bad Name\n    level: book\n    kind: drawdown_pct\n    threshold: 0.1\n", 2, ["name"]),
    ],
)
def test_mistakes_are_reported_with_line_and_key(tmp_path: Path, body: str, line: int, words: list[str]) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(body)
    with pytest.raises(UserError) as error:
        load_rules(path)
    message = str(error.value)
    assert f"{path}:{line}:" in message or (line == 1 and message.startswith(f"{path}")), message
    for word in words:
        assert word in message, message


def test_yaml_is_data_only(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text("rules: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(UserError, match="invalid YAML"):
        load_rules(path)


def test_durations() -> None:
    assert [parse_duration(v) for v in ("250ms", "30s", "5m", "1h", "1d", 12)] == [0.25, 30, 300, 3600, 86400, 12]
    with pytest.raises(ValueError):
        parse_duration("5 minutes")


def test_cli_check_lists_rules_and_fails_cleanly(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "collector", "alerts", "check", "--rules", str(ROOT / "rules" / "alerts.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "strategy-drawdown" in done.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: a\n    level: moon\n    kind: drawdown_pct\n    threshold: 0.1\n")
    done = subprocess.run(
        [sys.executable, "-m", "collector", "alerts", "check", "--rules", str(bad)], capture_output=True, text=True
    )
    assert done.returncode == 2 and f"{bad}:3" in done.stderr and "Traceback" not in done.stderr
