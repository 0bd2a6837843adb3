"""`make demo`: the simulated 31-strategy desk at an accelerated clock, the live view, a private InfluxDB.

The demo is a deployment of its own: state in `.stratmon/demo/` (its config `stratmon.yaml`,
checkpoint, spool, dead letters, parameter store and change log, rules copies and influxd data)
and database `stratmon_demo`, so real runs (state_dir `.stratmon`, database `stratmon` by
default) never see its checkpoint or its points. Runs for `--seconds` (default 60, or
$DEMO_SECONDS), then prints a few InfluxQL answers and how to look at them. Run it again and the
desk continues from its checkpoint, unless its clock would reach the present during the run (the
simulator never runs ahead of real time, so it would trade at real-time pace): then it starts over.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from rich.console import Console

from collector.config import Settings, load_settings
from collector.errors import UserError
from collector.jobs.scheduler import JOBS, enabled_jobs
from collector.receivers import SmtpReceiver, http_receiver, smtp_receiver
from collector.run import identity
from collector.run.collector import Collector
from collector.run.live import run_with_live_view
from collector.store.connect import open_reader, open_writer
from collector.store.influxd import LocalInfluxd
from collector.store.transport import Endpoint, run_statement

DEMO_DIR = Path(".stratmon/demo")
DEMO_DATABASE = "stratmon_demo"
DAY_S = 86_400.0
DEMO_CAPITAL = 10_000_000.0  # per simulated account
CLOCK_FILE = "clock.json"  # the simulated clock at the end of the last run
KEEP = ("influxdb",)  # what starting over leaves in the demo's directory (the server's own files)
PERCENT = ("win_rate", "return", "return_cum", "drawdown_pct", "max_drawdown_pct")
RATIOS = ("sharpe", "sortino", "profit_factor", "p50_ms", "p99_ms")

QUERIES = (
    (
        "strategies by equity (latest perf point; sharpe, win_rate empty until metrics.min_days / min_round_trips)",
        "SELECT last(equity) AS equity, last(nav) AS nav, last(max_drawdown_pct) AS max_drawdown_pct, "
        "last(sharpe) AS sharpe, last(win_rate) AS win_rate, last(trades) AS trades "
        "FROM perf WHERE level = 'strategy' GROUP BY strategy",
    ),
    (
        "portfolio, daily rollup (perf_1d; return = the day's PnL in % of capital)",
        "SELECT equity_open, equity_close, pnl, \"return\", fills, trades FROM perf_1d WHERE level = 'portfolio'",
    ),
    (
        "alerts fired, by rule",
        "SELECT count(active) AS fired FROM alerts WHERE state = 'firing' GROUP BY rule",
    ),
    (
        "collector health (last 5 s report)",
        "SELECT last(fills_in) AS fills_in, last(latency_p50_ms) AS p50_ms, last(latency_p99_ms) AS p99_ms, "
        "last(queue_depth) AS queue, last(write_errors) AS write_errors FROM collector",
    ),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector.demo", description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("DEMO_SECONDS", 60)))
    parser.add_argument("--speed", type=float, default=7200.0, help="simulated seconds per second (default 2 h/s)")
    parser.add_argument("--backfill-days", type=float, default=5.0, help="history the clock starts from")
    args = parser.parse_args(argv)
    # a rollup still running when the next is due is skipped (and caught up): not news for the live view
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    console = Console()
    root = DEMO_DIR.absolute()
    server = LocalInfluxd(root / "influxdb")
    state = server.start()
    run_s = args.seconds * args.speed  # simulated seconds this run covers at full speed
    # a fresh desk starts far enough back that this run never reaches the present (then it would trade in real time)
    history_s = max(args.backfill_days * DAY_S, 1.1 * run_s)
    restart = _caught_up(root, run_s)
    if restart:
        _start_over(root, state.url)
    config = _write_config(root, args.speed, history_s)
    settings = load_settings(config)
    _isolate(settings, root, state.url)  # STRATMON_* variables cannot point the demo at real state
    console.print(
        f"[bold]demo[/]: its own state dir {root} and database {DEMO_DATABASE!r}, apart from real runs "
        f"(config {config}); capital {DEMO_CAPITAL:,.0f} per simulated account"
    )
    legacy = DEMO_DIR.parent / "collector"
    if (legacy / "checkpoint.json").exists() and identity.read(legacy) is None:
        console.print(
            f"[bold yellow]note[/]: {legacy.absolute()} holds a checkpoint from before the demo had its own state dir "
            "(perhaps an earlier demo's desk); a real run with state_dir .stratmon would continue it: delete that "
            "directory unless it is your real deployment's"
        )
    if restart:
        console.print(
            "[bold]demo[/]: the simulated clock had reached the present (it never runs ahead of real time), "
            f"so the desk starts over with {history_s / DAY_S:.3g} days of fresh history"
        )
    with ExitStack() as stack:
        http = stack.enter_context(http_receiver())
        smtp = stack.enter_context(smtp_receiver())
        _point_notifiers(http.url, smtp, settings.alerts.rules)
        collector = Collector(settings)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: collector.stop())
        console.print(f"[bold]private InfluxDB[/] {state.url}  (data in {state.dir})")
        console.print(
            f"[bold]local notification receivers[/] Slack/webhook {http.url}"
            + (f", SMTP {smtp.host}:{smtp.port}" if smtp else "")
        )
        run_with_live_view(collector, args.seconds, console)
        (root / CLOCK_FILE).write_text(json.dumps({"clock_ns": collector.engine.clock_ns}) + "\n", encoding="utf-8")
        paths = [request.path for request in http.requests]
        console.rule("notifications received by the local receivers (fast-path rules)")
        console.print(
            f"Slack: {paths.count('/slack')}   webhook: {paths.count('/webhook')}   "
            f"email: {len(smtp.messages) if smtp else 'n/a (aiosmtpd not installed)'}"
        )
        slack = [r.json()["text"] for r in http.requests if r.path == "/slack"][:5]
        for text in slack:
            console.print(f"  [dim]slack:[/] {text}")
    _final_rollups(settings)
    reader = open_reader(settings)
    try:
        for title, statement in QUERIES:
            frame = reader.query(statement)
            console.rule(title)
            console.print(f"[dim]{statement}[/]")
            if "equity" in frame.columns and "strategy" in frame.columns:
                frame = frame.sort_values("equity", ascending=False)
            frame = frame.reset_index(drop="strategy" in frame.columns)
            console.print(_for_people(frame).to_string(index=False, max_rows=12))
    finally:
        reader.close()
    stratmon = Path(sys.executable).parent / "stratmon"  # absolute: the hints work from any directory
    console.print(
        f"\nThe demo's data stays in {state.dir} (database {DEMO_DATABASE!r});"
        f" its InfluxDB keeps running at {state.url}."
        f"\n  query it:   [bold]{stratmon} --config {config.resolve()} query "
        "'SELECT last(nav), last(equity) FROM perf GROUP BY level'[/]"
        f"\n  stop it:    [bold]{stratmon} --config {config.resolve()} influx stop[/]"
        "\n  run again:  [bold]make demo[/] (continues from its checkpoint until its clock reaches the present)"
        "\nReal runs use their own config's state_dir and database and never read the demo's."
        "\nDashboards: on a machine with Docker, [bold]cp .env.example .env[/], fill in the secrets, then"
        " [bold]docker compose up[/] and open http://localhost:3000 (see README, Full stack)."
    )
    return 0


def _write_config(root: Path, speed: float, backfill_s: float) -> Path:
    """The demo's deployment as a config file, so `stratmon --config` reaches the demo's server and data."""
    root.mkdir(parents=True, exist_ok=True)
    defaults = Settings()
    store = root / "parameters.json"
    rules = {
        "alerts": _copy_rules(defaults.alerts.rules, root / "demo-alerts.yaml", {}),
        "optimize": _copy_rules(
            defaults.optimize.rules,
            root / "demo-optimization.yaml",
            {
                ("store", "path"): str(store),
                ("store", "audit"): str(root / "changes.jsonl"),
                ("guardrails", "kill_switch_file"): str(root / "optimizer.kill"),
            },
        ),
    }
    config: dict[str, Any] = {
        "state_dir": str(root),
        "influx": {"database": DEMO_DATABASE},
        # the simulated books enter ~250k per trade in up to 31 strategies: at 10M an account the desk's gross
        # exposure is ~0.35x capital, and with the desk-wide shock below a day's PnL is typically within ±1%
        "capital": {"default": DEMO_CAPITAL},
        "metrics": {"day_basis": "calendar"},  # the simulated market trades every day, weekends too (√365 a year)
        "spool": {"dir": str(root / "spool")},
        "ingest": {"dead_letter": str(root / "dead-letter.jsonl")},
        # closed loop: the optimizer's changes change what the simulated desk does
        # correlation: the strategies share a daily desk-wide shock (10% of a book's daily variance), so the desk's
        # Sharpe is a desk's (~3 expected), not that of 124 independent books (~11)
        "sources": [
            {
                "type": "simulator",
                "speed": speed,
                "backfill": backfill_s,
                "parameters_file": str(store),
                "correlation": 0.1,
            }
        ],
        "jobs": {"lateness": 0, "rollup_every": 5},  # the accelerated clock makes windows complete quickly
        "alerts": {"rules": str(rules["alerts"])},
        "optimize": {"rules": str(rules["optimize"])},
    }
    path = root / "stratmon.yaml"
    header = "# written by `make demo` (python -m collector.demo) at every start: the demo's own deployment\n"
    path.write_text(header + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _copy_rules(source: Path, target: Path, paths: dict[tuple[str, str], str]) -> Path:
    """A copy of a rules file with the given (section, key) values replaced: the demo's files, not the real ones."""
    rules = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
    for (section, key), value in paths.items():
        rules.setdefault(section, {})[key] = value
    target.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    return target


def _isolate(settings: Settings, root: Path, url: str) -> None:
    """Whatever the environment says, the demo keeps to its own directory, server and database."""
    settings.state_dir = root
    settings.influx.url = url
    settings.influx.database = DEMO_DATABASE
    settings.spool.dir = root / "spool"
    settings.ingest.dead_letter = root / "dead-letter.jsonl"


def _caught_up(root: Path, run_s: float) -> bool:
    """Would this run's simulated clock reach the present? (then it would trade in real time: ~0 fills/s)."""
    try:
        clock_ns = int(json.loads((root / CLOCK_FILE).read_text(encoding="utf-8"))["clock_ns"])
    except (OSError, ValueError, KeyError, TypeError):
        return False  # a first run, or a run that never ended cleanly: the checkpoint (if any) decides
    return (time.time_ns() - clock_ns) / 1e9 < run_s


def _start_over(root: Path, url: str) -> None:
    """Drop the demo's database and state (never the server's data directory), so history is fresh again."""
    mine = identity.read(root / "collector")
    if mine is not None and mine.database != DEMO_DATABASE:
        raise UserError(f"{root} holds the state of another deployment ({mine.describe()}); not starting over there")
    run_statement(Endpoint(url, DEMO_DATABASE), f'DROP DATABASE "{DEMO_DATABASE}"')
    for entry in root.iterdir():
        if entry.name in KEEP:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _point_notifiers(http_url: str, smtp: SmtpReceiver | None, rules_path: Path) -> None:
    """The demo's rules copy with its notifiers pointed at the local receivers."""
    rules = yaml.safe_load(Path(rules_path).read_text(encoding="utf-8"))
    notifiers = rules.get("notifiers", {})
    os.environ["STRATMON_SLACK_WEBHOOK_URL"] = f"{http_url}/slack"
    os.environ["STRATMON_ALERT_WEBHOOK_URL"] = f"{http_url}/webhook"
    os.environ.setdefault("STRATMON_ALERT_WEBHOOK_SECRET", "demo-secret")
    for name, notifier in list(notifiers.items()):
        if notifier.get("type") == "email":
            if smtp is None:
                del notifiers[name]
                continue
            notifier.update(host=smtp.host, port=smtp.port, security="none", username=None, password_env=None)
    Path(rules_path).write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")


def _for_people(frame: pd.DataFrame) -> pd.DataFrame:
    """Rounded for reading: money in whole units, ratios to 2 decimals, fractions in %, — where undefined."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            if (out[column].astype("int64") == 0).all():
                out = out.drop(columns=column)  # an aggregate over all time: InfluxDB answers epoch 0
            continue
        values = pd.to_numeric(out[column], errors="coerce")
        if values.isna().all() and out[column].notna().any():
            continue  # a tag or a text column
        if column in PERCENT:
            text = values.map(lambda v: f"{v * 100:.2f}%")
        elif column in RATIOS:
            text = values.map(lambda v: f"{v:.2f}")
        else:
            text = values.map(lambda v: f"{v:,.0f}")
        out[column] = text.where(values.notna(), "—")
    return out


def _final_rollups(settings: Settings) -> None:
    """Close the last windows so the rollup tables include the end of the run."""
    writer = open_writer(settings)
    try:
        for name in enabled_jobs(settings):
            JOBS[name](settings, writer)
    finally:
        writer.close()


if __name__ == "__main__":
    raise SystemExit(main())
