"""`make demo`: a private InfluxDB, the simulated 31-strategy desk at an accelerated clock, the live view.

Runs for `--seconds` (default 60, or $DEMO_SECONDS), then prints a few InfluxQL answers from what
was written and how to look at it in Grafana. Run it again and the desk continues from its
checkpoint instead of starting over.
"""

from __future__ import annotations

import argparse
import os
import signal
from contextlib import ExitStack
from pathlib import Path

import yaml
from rich.console import Console

from collector.config import Settings, SimulatorSourceConfig, load_settings
from collector.jobs.scheduler import JOBS, enabled_jobs
from collector.optimize.rules import load_optimization
from collector.receivers import SmtpReceiver, http_receiver, smtp_receiver
from collector.run.collector import Collector
from collector.run.live import run_with_live_view
from collector.store.connect import open_reader, open_writer
from collector.store.influxd import LocalInfluxd

QUERIES = (
    (
        "strategies by equity (latest perf point)",
        "SELECT last(equity) AS equity, last(sharpe) AS sharpe, last(win_rate) AS win_rate, last(trades) AS trades "
        "FROM perf WHERE level = 'strategy' GROUP BY strategy",
    ),
    (
        "portfolio, daily rollup (perf_1d)",
        "SELECT equity_open, equity_close, pnl, fills, trades FROM perf_1d WHERE level = 'portfolio'",
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
    console = Console()
    settings = load_settings(os.environ.get("STRATMON_CONFIG"))
    server = LocalInfluxd(settings.state_dir / "influxdb")
    state = server.start()
    if not settings.influx.url:
        settings.influx.url = state.url
    store = Path(".stratmon/parameters.json")
    if settings.optimize.enabled and Path(settings.optimize.rules).is_file():
        store = load_optimization(settings.optimize.rules).store.path
    settings.sources = settings.sources or [
        SimulatorSourceConfig(
            type="simulator", speed=args.speed, backfill=args.backfill_days * 86_400, parameters_file=store
        )  # closed loop: the optimizer's changes change what the simulated desk does
    ]
    settings.jobs.lateness = 0  # the accelerated clock makes windows complete quickly
    settings.jobs.rollup_every = 5
    with ExitStack() as stack:
        http = stack.enter_context(http_receiver())
        smtp = stack.enter_context(smtp_receiver())
        if settings.alerts.enabled:
            settings.alerts.rules = _demo_rules(settings, http.url, smtp)
        collector = Collector(settings)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: collector.stop())
        console.print(f"[bold]private InfluxDB[/] {state.url}  (data in {state.dir})")
        console.print(
            f"[bold]local notification receivers[/] Slack/webhook {http.url}"
            + (f", SMTP {smtp.host}:{smtp.port}" if smtp else "")
        )
        run_with_live_view(collector, args.seconds, console)
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
            console.print(frame.reset_index(drop="strategy" in frame.columns).to_string(index=False, max_rows=12))
    finally:
        reader.close()
    console.print(
        f"\nThe data stays in {state.dir} (database {settings.influx.database!r});"
        f" InfluxDB keeps running at {state.url}."
        "\n  query it:   [bold].venv/bin/stratmon query 'SELECT last(equity) FROM perf GROUP BY level'[/]"
        "\n  stop it:    [bold].venv/bin/stratmon influx stop[/]"
        "\n  run again:  [bold]make demo[/] (the desk continues from its checkpoint)"
        "\nDashboards: on a machine with Docker, [bold]cp .env.example .env[/], fill in the secrets, then"
        " [bold]docker compose up[/] and open http://localhost:3000 (see README, Full stack)."
    )
    return 0


def _demo_rules(settings: Settings, http_url: str, smtp: SmtpReceiver | None) -> Path:
    """The configured rules with their notifiers pointed at the local receivers."""
    rules = yaml.safe_load(Path(settings.alerts.rules).read_text(encoding="utf-8"))
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
    path = Path(settings.state_dir) / "demo-alerts.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    return path


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
