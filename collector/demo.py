"""`make demo`: a private InfluxDB, the bundled sample fills ingested, a summary and a few InfluxQL answers."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console

from collector.config import load_settings
from collector.ingest import ingest_files
from collector.store.connect import open_reader
from collector.store.influxd import LocalInfluxd

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sample-fills.jsonl"
QUERIES = (
    ("fills per account", 'SELECT count(qty) AS fills, sum(notional) AS volume FROM fills GROUP BY "account"'),
    ("busiest strategies", 'SELECT count(qty) AS fills FROM fills GROUP BY "strategy"'),
    ("slippage by side (bps)", 'SELECT mean(slippage_bps) AS avg_bps, count(slippage_bps) FROM fills GROUP BY "side"'),
)


def main() -> int:
    console = Console()
    settings = load_settings(os.environ.get("STRATMON_CONFIG"))
    server = LocalInfluxd(settings.state_dir / "influxdb")
    state = server.start()
    if not settings.influx.url:
        settings.influx.url = state.url
    console.print(f"[bold]private InfluxDB[/] {state.url}  (data in {state.dir})")
    summary = ingest_files(settings, [str(SAMPLE)], dead_letter=settings.state_dir / "demo-dead-letter.jsonl")
    console.print(f"[bold]ingest[/] {summary.contract()}")
    console.print(f"rejected records with reasons: {settings.state_dir / 'demo-dead-letter.jsonl'}")
    reader = open_reader(settings)
    try:
        for title, statement in QUERIES:
            frame = reader.query(statement).reset_index(drop=True)
            frame = frame.sort_values(frame.columns[0], ascending=False).head(8)
            console.rule(title)
            console.print(f"[dim]{statement}[/]")
            console.print(frame.to_string(index=False))
    finally:
        reader.close()
    console.print(
        "\nInfluxDB keeps running; try  [bold].venv/bin/stratmon query 'SELECT * FROM fills LIMIT 5'[/]"
        "\nstop it with  [bold].venv/bin/stratmon influx stop[/]"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
