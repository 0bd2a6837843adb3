"""The `stratmon` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from collector import __version__
from collector.config import Settings, load_settings
from collector.errors import RunFailed, UserError
from collector.store.influxd import DEFAULT_DIR, LocalInfluxd
from collector.store.reader import QueryError

log = logging.getLogger("stratmon")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def cmd_ingest(args: argparse.Namespace) -> int:
    from collector.ingest import ingest_files

    settings = _settings(args)
    summary = ingest_files(
        settings,
        args.paths,
        fmt=args.format,
        dead_letter=args.dead_letter,
        show_progress=sys.stderr.isatty() and not args.json,
    )
    if args.json:
        print(json.dumps(summary.contract()))
    else:
        print(
            f"accepted {summary.accepted}  rejected {summary.rejected}  "
            f"duplicates {summary.duplicates}  written {summary.written}"
        )
        if summary.rejected:
            print(f"rejected records and their reasons: {args.dead_letter or settings.ingest.dead_letter}")
    if summary.spooled_batches:
        print(
            f"InfluxDB did not take everything: {summary.spooled_batches} batches wait in "
            f"{settings.spool.dir} "
            "and are replayed by the next run",
            file=sys.stderr,
        )
    if summary.failed:
        print(f"InfluxDB rejected {summary.failed} points as bad data (see the log)", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from collector.report import build_report, rejects_summary, render

    report = build_report(
        _settings(args), args.paths, fmt=args.format_in, marks_paths=args.marks, dead_letter=args.dead_letter
    )
    sys.stdout.write(render(report, args.format, args.level))
    summary = rejects_summary(report)
    if summary:
        print(summary, file=sys.stderr)
    return 0


def _frame_for_output(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.index.name == "time":
        frame = frame.reset_index()
        frame["time"] = frame["time"].map(lambda t: t.isoformat().replace("+00:00", "Z"))
    return frame


def cmd_query(args: argparse.Namespace) -> int:
    from collector.store.connect import open_reader

    reader = open_reader(_settings(args))
    try:
        frame = _frame_for_output(reader.query(args.statement))
    finally:
        reader.close()
    if args.format == "csv":
        sys.stdout.write(frame.to_csv(index=False))
    elif args.format == "json":
        print(frame.to_json(orient="records"))
    else:
        table = Table(show_lines=False)
        for column in frame.columns:
            table.add_column(str(column), justify="right" if frame[column].dtype.kind in "if" else "left")
        for row in frame.itertuples(index=False):
            table.add_row(*("" if pd.isna(v) else str(v) for v in row))
        Console(width=None if sys.stdout.isatty() else 400).print(table)
        print(f"{len(frame)} rows")
    return 0


def cmd_influx(args: argparse.Namespace) -> int:
    server = LocalInfluxd(args.dir)
    if args.action == "start":
        state = server.start(port=args.port)
        print(f"influxd running: {state.url} (pid {state.pid}, data in {state.dir})")
        print(f"export STRATMON_INFLUX_URL={state.url}")
    elif args.action == "stop":
        print("influxd stopped" if server.stop() else "no influxd running for " + str(server.dir))
    else:
        running = server.status()
        if running is None:
            print(f"not running ({server.dir})")
            return 3
        print(f"running: {running.url} (pid {running.pid}, data in {running.dir})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="YAML settings file (default: $STRATMON_CONFIG)")
    common.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default), ERROR")

    parser = argparse.ArgumentParser(prog="stratmon", description=__doc__, parents=[common])
    parser.add_argument("--version", action="version", version=f"stratmon {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    ingest = sub.add_parser("ingest", parents=[common], help="validate fills files and write them to InfluxDB")
    ingest.add_argument("paths", nargs="+", metavar="PATH", help="JSONL/CSV files; - reads stdin")
    ingest.add_argument("--format", choices=["jsonl", "csv"], help="default: from the file extension")
    ingest.add_argument("--dead-letter", type=Path, help="where rejected records go (JSONL)")
    ingest.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    ingest.set_defaults(func=cmd_ingest)

    report = sub.add_parser("report", parents=[common], help="all metrics at every level from fills files")
    report.add_argument("paths", nargs="+", metavar="PATH", help="JSONL/CSV fills files; - reads stdin")
    report.add_argument("--format", choices=["json", "csv", "table"], default="table", help="output format")
    report.add_argument("--level", choices=["portfolio", "account", "strategy", "book"], help="only this level")
    report.add_argument("--marks", nargs="+", metavar="PATH", help="marks files ({ts, symbol, price} records)")
    report.add_argument("--input-format", dest="format_in", choices=["jsonl", "csv"], help="default: from extension")
    report.add_argument("--dead-letter", type=Path, help="where rejected records go (JSONL)")
    report.set_defaults(func=cmd_report)

    query = sub.add_parser("query", parents=[common], help="run an InfluxQL statement")
    query.add_argument("statement", metavar="INFLUXQL")
    query.add_argument("--format", choices=["table", "csv", "json"], default="table")
    query.set_defaults(func=cmd_query)

    influx = sub.add_parser("influx", parents=[common], help="a private influxd for tests and the demo")
    influx.add_argument("action", choices=["start", "stop", "status"])
    influx.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"data directory (default {DEFAULT_DIR})")
    influx.add_argument("--port", type=int, help="HTTP port on 127.0.0.1 (default: a free one)")
    influx.set_defaults(func=cmd_influx)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        return handler(args)
    except (UserError, RunFailed, QueryError) as exc:
        print(f"stratmon: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    except KeyboardInterrupt:
        return 130
