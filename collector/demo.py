"""`make demo`: a private InfluxDB, the simulated 31-strategy desk at an accelerated clock, the live view.

Runs for `--seconds` (default 60, or $DEMO_SECONDS), then prints a few InfluxQL answers from what
was written and how to look at it in Grafana. Run it again and the desk continues from its
checkpoint instead of starting over.
"""

from __future__ import annotations

import argparse
import os
import signal

from rich.console import Console

from collector.config import Settings, SimulatorSourceConfig, load_settings
from collector.jobs.scheduler import JOBS, enabled_jobs
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
    settings.sources = settings.sources or [
        SimulatorSourceConfig(type="simulator", speed=args.speed, backfill=args.backfill_days * 86_400)
    ]
    settings.jobs.lateness = 0  # the accelerated clock makes windows complete quickly
    settings.jobs.rollup_every = 5
    collector = Collector(settings)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: collector.stop())
    console.print(f"[bold]private InfluxDB[/] {state.url}  (data in {state.dir})")
    run_with_live_view(collector, args.seconds, console)
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
