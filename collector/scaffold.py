"""`stratmon init DIR`: a new deployment from the shipped defaults.

Writes a short working config (a file source tailing `fills/`), the fully commented example config,
the default rules, an `.env.example` naming every secret with an empty value, and a README stub.
Existing files are never overwritten unless `force` is set.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from collector.alerts.rules import AlertRules, load_rules
from collector.errors import UserError
from collector.packaged import shipped

CONFIG = """\
# stratmon settings of this deployment (written by `stratmon init`). Every key, with its default,
# is documented in stratmon.example.yaml beside this file. Relative paths are relative to the
# directory stratmon runs in: run it from here. Secrets come from the environment (.env.example).
state_dir: .stratmon

influx:
  # http(s)://host:port of InfluxDB (or STRATMON_INFLUX_URL); empty: the private influxd of
  # `stratmon influx start`.
  url:
  database: stratmon

sources:
  # Fills files your trading system writes here (JSONL or CSV, one fill per line): tailed, with
  # rotation followed and the offset checkpointed. Add http or fix sources from the example config.
  - type: file
    name: fills
    paths: [fills/*.jsonl, fills/*.csv]

alerts:
  rules: rules/alerts.yaml

optimize:
  rules: rules/optimization.yaml
"""

_INFLUX_ENV = """\
# Environment of this stratmon deployment. Copy to .env, fill in, keep it out of version control;
# load it with `set -a; . ./.env; set +a` (or a systemd EnvironmentFile). Empty values are unset.

# InfluxDB (empty URL: the private influxd of `stratmon influx start`).
STRATMON_INFLUX_URL=
STRATMON_INFLUX_DATABASE=stratmon
# InfluxDB 2.x / 3 Core API token and 2.x organization.
STRATMON_INFLUX_TOKEN=
STRATMON_INFLUX_ORG=
# InfluxDB 1.x login, when its auth is on.
STRATMON_INFLUX_USERNAME=
STRATMON_INFLUX_PASSWORD=
# Bearer token of an http source (at least 16 characters), if you add one.
STRATMON_HTTP_TOKEN=
"""

README = """\
# stratmon deployment

Written by `stratmon init`. Run every command from this directory.

| file | |
|---|---|
| `stratmon.yaml` | the settings: InfluxDB, the `fills/` file source, the rules files |
| `stratmon.example.yaml` | every setting with its default and what it does |
| `rules/alerts.yaml` | alert rules and notifiers (the same file generates Grafana's alert rules) |
| `rules/optimization.yaml` | tunable parameters, guardrails and optimization rules |
| `.env.example` | the environment variables for secrets, all empty: copy to `.env` and fill in |
| `fills/` | where the file source picks up fills (`*.jsonl`, `*.csv`) |

```
export STRATMON_CONFIG=$PWD/stratmon.yaml
set -a; . ./.env; set +a                  # after filling in .env
stratmon alerts check                     # validate the rules, list them
stratmon grafana build                    # dashboards and provisioning into grafana/
stratmon report fills/*.jsonl             # every metric from fills files, without InfluxDB
stratmon influx start                     # a private InfluxDB, unless STRATMON_INFLUX_URL is set
stratmon run --live                       # the collector: fills/ -> metrics -> InfluxDB, alerts
```

Rejected records go to `.stratmon/dead-letter.jsonl` with their reason.
`stratmon completion bash` (or `zsh`) prints a shell completion script.
"""


def notifier_env(rules: AlertRules) -> list[str]:
    """The environment variables the notifiers read their secrets from, in file order."""
    names: list[str] = []
    for notifier in rules.notifiers.values():
        for field, value in notifier:
            if field.endswith("_env") and isinstance(value, str) and value not in names:
                names.append(value)
    return names


def env_example(rules: AlertRules) -> str:
    lines = [
        _INFLUX_ENV,
        "# Notifier secrets named in rules/alerts.yaml (a notifier without its secret is disabled).\n",
    ]
    lines += [f"{name}=\n" for name in notifier_env(rules)]
    return "".join(lines)


def init_deployment(target: Path, force: bool = False) -> list[Path]:
    """Write a deployment into `target`; returns the files written. Refuses to overwrite without `force`."""
    if target.exists() and not target.is_dir():
        raise UserError(f"init: {target} is a file; expected a directory (or a path to create)")
    rules_dir = shipped("rules")
    rules = load_rules(rules_dir / "alerts.yaml")
    files: dict[Path, str | Path] = {
        target / "stratmon.yaml": CONFIG,
        target / "stratmon.example.yaml": shipped("stratmon.example.yaml"),
        target / "rules" / "alerts.yaml": rules_dir / "alerts.yaml",
        target / "rules" / "optimization.yaml": rules_dir / "optimization.yaml",
        target / ".env.example": env_example(rules),
        target / "README.md": README,
    }
    existing = [str(path) for path in files if path.exists()]
    if existing and not force:
        raise UserError(f"init: not overwriting {', '.join(existing)} (pass --force to replace them)")
    try:
        (target / "rules").mkdir(parents=True, exist_ok=True)
        (target / "fills").mkdir(exist_ok=True)
        for path, content in files.items():
            if isinstance(content, Path):
                shutil.copyfile(content, path)
            else:
                path.write_text(content, encoding="utf-8")
    except OSError as exc:  # a read-only or full disk, a file where a directory belongs
        raise UserError(f"init: cannot write {exc.filename or target}: {exc.strerror or exc}") from None
    return list(files)
