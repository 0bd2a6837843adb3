"""Command-line conventions: --format is output, log levels and times, change ids, dry runs, completion, init."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from collector.cli import main, suggestions_table
from collector.config import load_settings
from collector.errors import UserError
from collector.logsetup import JsonFormatter, TextFormatter, utc_time
from collector.optimize.apply import Applier
from collector.optimize.job import Result
from collector.optimize.rules import load_optimization
from collector.optimize.store import AuditLog, ChangeRecord
from collector.optimize.suggest import Suggestion
from collector.scaffold import init_deployment
from tests.helpers import fill, write_jsonl

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "collector"]


def _cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)


def _main(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """`stratmon ARGS` in this process (no interpreter start-up): exit status, stdout, stderr."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_format_is_the_output_format_and_the_old_input_spelling_says_what_to_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in ("ingest", "report"):
        code, _, err = _main(capsys, command, "x.log", "--format", "fix")
        assert code == 2 and "argument --format: 'fix' is an input format: use --input-format fix" in err
    fills = write_jsonl(tmp_path / "fills.txt", [fill()])  # an extension that says nothing
    code, out, err = _main(capsys, "report", fills, "--input-format", "jsonl", "--format", "json")
    assert code == 0 and json.loads(out)["levels"]["portfolio"][0]["fills"] == 1, err
    code, out, err = _main(capsys, "report", fills, "--input-format", "jsonl", "--format", "csv")  # csv: both kinds
    assert code == 0 and out.startswith("level,account,strategy,"), err
    code, _, err = _main(capsys, "report", fills)
    assert code == 2 and "pass --input-format jsonl|csv|fix" in err


def test_an_unknown_log_level_is_an_error_and_case_does_not_matter(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _main(capsys, "--log-level", "LOUD", "jobs", "list")
    assert code == 2 and "argument --log-level: invalid choice: 'LOUD'" in err
    assert _main(capsys, "jobs", "list", "--log-level", "debug")[0] == 0


def test_log_times_are_utc_with_milliseconds_and_a_zone() -> None:
    created = 1_795_000_000.9999  # 2026-11-18T11:06:40.9999 UTC: truncated, not rounded into the next second
    assert utc_time(created) == "2026-11-18T11:06:40.999Z"
    record = logging.LogRecord("stratmon.x", logging.WARNING, __file__, 1, "spool %s", ("full",), None)
    record.created = created
    assert TextFormatter().format(record) == "2026-11-18T11:06:40.999Z WARNING stratmon.x: spool full"
    entry = json.loads(JsonFormatter().format(record))
    assert entry == {
        "time": "2026-11-18T11:06:40.999Z",
        "level": "WARNING",
        "logger": "stratmon.x",
        "message": "spool full",
    }


def test_every_command_logs_utc_times_in_text_and_json() -> None:
    for fmt in ("text", "json"):
        probe = (
            "import logging; from collector.cli import main; "
            f"main(['--log-format', '{fmt}', '--log-level', 'info', 'jobs', 'list']); "
            "logging.getLogger('stratmon.probe').info('probe')"
        )
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
        (line,) = done.stderr.splitlines()
        stamp = json.loads(line)["time"] if fmt == "json" else line.split(" ")[0]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp), line
        assert line.endswith(("INFO stratmon.probe: probe", '"message": "probe"}'))


def _optimizer_config(tmp_path: Path) -> Path:
    rules = yaml.safe_load((ROOT / "rules" / "optimization.yaml").read_text())
    rules["store"] = {"path": str(tmp_path / "parameters.json"), "audit": str(tmp_path / "changes.jsonl")}
    rules["guardrails"]["kill_switch_file"] = str(tmp_path / "kill")
    (tmp_path / "opt.yaml").write_text(yaml.safe_dump(rules))
    data = {"optimize": {"rules": str(tmp_path / "opt.yaml")}}
    config = tmp_path / "stratmon.yaml"
    config.write_text(yaml.safe_dump(data))
    return config


def test_a_bad_change_id_names_the_ids_there_are(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _optimizer_config(tmp_path)
    code, _, err = _main(capsys, "--config", config, "changes", "rollback", "nope")
    assert code == 2 and f"no applied change 'nope'; there are none in {tmp_path}" in err
    audit = AuditLog(tmp_path / "changes.jsonl")
    applied = ChangeRecord("trend_es", "*", "allocation", 1.0, 1.2, "apply", "volatility-target", "why", id="a1")
    audit.append(applied)
    audit.append(ChangeRecord("trend_nq", "*", "allocation", 1.0, 0.9, "dry-run", "volatility-target", "why", id="d1"))
    code, _, err = _main(capsys, "--config", config, "changes", "rollback", "a2")
    assert code == 2 and "no applied change 'a2'; ids in" in err and err.rstrip().endswith(": a1"), err
    code, _, err = _main(capsys, "--config", config, "changes", "show", "zz")
    assert code == 2 and err.rstrip().endswith(": a1, d1")
    code, _, err = _main(capsys, "--config", config, "changes", "show")
    assert code == 2 and "needs a change id; ids in" in err
    code, out, _ = _main(capsys, "--config", config, "changes", "show", "d1")
    assert code == 0 and json.loads(out)["action"] == "dry-run"
    ids = [f"c{i:02d}" for i in range(14)]
    for change_id in ids:
        audit.append(
            ChangeRecord("trend_es", "*", "allocation", 1.0, 1.1, "apply", "volatility-target", "", id=change_id)
        )
    code, _, err = _main(capsys, "--config", config, "changes", "rollback", "zz")
    assert err.rstrip().endswith(f"{', '.join(ids[-10:])} (and 5 older; `stratmon changes list`)"), err


def test_a_dry_run_never_lists_a_change_that_is_already_in_place(tmp_path: Path) -> None:
    # A canary: the desk-wide suggestion goes to one account, which then already has the value while the
    # strategy's "*" value (the suggestion's old) has not moved: the next run must not show it as a change.
    config = load_optimization(_optimizer_config(tmp_path).parent / "opt.yaml")
    suggestion = Suggestion("volatility-target", "trend_es", "*", "allocation", 1.0, 0.8, "why", 0.9, "low")
    first = Applier(config).propose_suggestion(suggestion, now_ns=10**18, account="ACC1")
    assert first.decision.applied
    config.guardrails.dry_run = True  # `optimize --dry-run`
    again = Result(suggestion, Applier(config).propose_suggestion(suggestion, now_ns=10**18 + 1, account="ACC1"))
    assert again.outcome.decision.unchanged and "already at the proposed value" in again.outcome.decision.reason
    other = Suggestion("volatility-target", "trend_nq", "*", "allocation", 1.0, 1.2, "why", 0.9, "low")
    pending = Result(other, Applier(config).propose_suggestion(other, now_ns=10**18 + 2))
    assert pending.status == "dry-run"
    table, left_out = suggestions_table([again, pending], dry_run=True)
    console = Console(file=io.StringIO(), width=400)
    console.print(table)
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert (left_out, table.row_count) == (1, 1)
    assert "trend_nq/*" in shown and "allocation: 1.0 → 1.2" in shown and "dry-run" in shown
    assert "trend_es" not in shown and "no change" not in shown


def test_bash_completion_completes_commands_actions_and_choices(tmp_path: Path) -> None:
    script = tmp_path / "stratmon.bash"
    script.write_text(_cli("completion", "bash").stdout)
    probe = (
        f"source {script}\n"
        'complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _shtab_stratmon; echo "${COMPREPLY[*]}"; }\n'
        "complete_words stratmon gra\n"
        "complete_words stratmon grafana ''\n"
        "complete_words stratmon --log-level ''\n"
        "complete_words stratmon report f.csv --format ''\n"
    )
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "grafana",
        "build check alerting",
        "DEBUG INFO WARNING ERROR CRITICAL",
        "json csv table",
    ]
    zsh = _cli("completion", "zsh").stdout
    assert zsh.startswith("#compdef stratmon") and "init" in zsh and "completion" in zsh


def test_init_writes_a_deployment_that_loads_and_refuses_to_overwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy = tmp_path / "desk"
    written = init_deployment(deploy)
    rules = {"rules/alerts.yaml", "rules/optimization.yaml"}
    expected = {"stratmon.yaml", "stratmon.example.yaml", ".env.example", "README.md"} | rules
    assert {p.relative_to(deploy).as_posix() for p in written} == expected
    assert (deploy / "stratmon.example.yaml").read_text() == (ROOT / "stratmon.example.yaml").read_text()
    monkeypatch.chdir(deploy)
    settings = load_settings("stratmon.yaml")
    assert [s.type for s in settings.sources] == ["file"] and settings.alerts.rules == Path("rules/alerts.yaml")
    assert settings.influx.token is None and settings.influx.url is None
    values = dict(line.split("=", 1) for line in (deploy / ".env.example").read_text().splitlines() if "=" in line)
    assert {k for k, v in values.items() if v} == {"STRATMON_INFLUX_DATABASE"}  # no secret has a value
    assert {"STRATMON_SMTP_PASSWORD", "STRATMON_ALERT_WEBHOOK_SECRET", "STRATMON_HTTP_TOKEN"} <= set(values)
    (deploy / "rules" / "alerts.yaml").write_text("mine")
    with pytest.raises(UserError, match=r"not overwriting .*rules/alerts.yaml.* \(pass --force"):
        init_deployment(deploy)
    assert (deploy / "rules" / "alerts.yaml").read_text() == "mine"
    init_deployment(deploy, force=True)
    assert (deploy / "rules" / "alerts.yaml").read_text() == (ROOT / "rules" / "alerts.yaml").read_text()
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="is a file"):
        init_deployment(tmp_path / "file")
    (tmp_path / "blocked").mkdir()
    (tmp_path / "blocked" / "rules").write_text("")  # a file where the rules directory belongs
    with pytest.raises(UserError, match=r"init: cannot write .*blocked/rules: File exists"):
        init_deployment(tmp_path / "blocked")


def test_rules_default_to_the_working_directory_then_the_shipped_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRATMON_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    shipped = load_settings()
    assert shipped.alerts.rules == ROOT / "rules" / "alerts.yaml"  # a source checkout's files
    assert shipped.optimize.rules == ROOT / "rules" / "optimization.yaml"
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "alerts.yaml").write_text("rules: []\n")
    assert load_settings().alerts.rules == Path("rules/alerts.yaml")
