"""The `stratmon` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from collector import __version__
from collector.config import Settings, load_settings
from collector.errors import QueryError, RunFailed, UserError
from collector.logsetup import LEVELS, configure
from collector.store.influxd import LocalInfluxd

if TYPE_CHECKING:
    import pandas as pd

    from collector.optimize.job import Result
    from collector.sources.colmap import ColumnMap

ALL_REJECTED_EXIT = 3  # the input was read, but some file had records and gave no fill (all rejected or skipped)
INPUT_FORMATS = ("jsonl", "csv", "fix")  # --input-format; --format is always the output format

log = logging.getLogger("stratmon")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def cmd_ingest(args: argparse.Namespace) -> int:
    from collector.ingest import ingest_files

    settings = _settings(args)
    summary = ingest_files(
        settings,
        args.paths,
        fmt=args.format_in,
        dead_letter=args.dead_letter,
        show_progress=sys.stderr.isatty() and not args.json,
        profile=_column_map(args),
    )
    if args.json or args.format == "json":
        print(json.dumps(summary.contract()))
    else:
        print(
            f"accepted {summary.accepted}  rejected {summary.rejected}  "
            f"duplicates {summary.duplicates}  written {summary.written}  skipped {summary.skipped} (not fills)"
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
    return _all_rejected_status(summary.all_rejected, summary.no_fills)


def _column_map(args: argparse.Namespace) -> ColumnMap | None:
    from collector.packaged import shipped_map
    from collector.sources.colmap import load_map

    if args.map is None:
        return None
    # a bare name that is no file here is one of the shipped profiles (`--map ibkr-activity`)
    shipped = None if args.map.exists() else shipped_map(str(args.map))
    return load_map(shipped or args.map)


def _all_rejected_status(paths: list[str], no_fills: list[str]) -> int:
    """Exit 3 when an input had records but gave no fill (all rejected or skipped), so a cron job notices."""
    from collector.ingest import no_fill_messages

    errors = no_fill_messages(paths, no_fills)
    for error in errors:
        print(f"stratmon: error: {error}", file=sys.stderr)
    return ALL_REJECTED_EXIT if errors else 0


def cmd_report(args: argparse.Namespace) -> int:
    from collector.report import Observer, build_report, rejects_summary, render

    settings = _settings(args)
    observers: list[Observer] = []
    history = None
    if args.html:
        from collector.report_html import history_for

        history = history_for(settings)
        observers.append(history)
    report = build_report(
        settings,
        args.paths,
        fmt=args.format_in,
        marks_paths=args.marks,
        dead_letter=args.dead_letter,
        observers=observers,
        profile=_column_map(args),
    )
    if history is not None:
        from collector.report_html import write_html

        write_html(args.html, report, history)
        print(f"wrote {args.html}", file=sys.stderr)
    else:
        sys.stdout.write(render(report, args.format, args.level))
    summary = rejects_summary(report)
    if summary:
        print(summary, file=sys.stderr)
    return _all_rejected_status(report.all_rejected, report.no_fills)


def _frame_for_output(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.index.name == "time":
        frame = frame.reset_index()
        frame["time"] = frame["time"].map(lambda t: t.isoformat().replace("+00:00", "Z"))
    return frame


def cmd_query(args: argparse.Namespace) -> int:
    import pandas as pd

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
        from collector.report import cell

        table = Table(show_lines=False)
        for column in frame.columns:
            table.add_column(str(column), justify="right" if frame[column].dtype.kind in "if" else "left")
        columns = [str(column) for column in frame.columns]
        for row in frame.itertuples(index=False):  # rounded for people, like the report (csv/json: full precision)
            table.add_row(*("—" if pd.isna(v) else cell(c, v) for c, v in zip(columns, row, strict=True)))
        Console(width=None if sys.stdout.isatty() else 400).print(table)
        print(f"{len(frame)} rows")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from collector.run.collector import Collector

    settings = _settings(args)
    if not settings.sources:
        raise UserError("nothing to run: the config has no sources (see stratmon.example.yaml, section sources:)")
    if settings.bus is not None:
        return _run_router(settings, args.duration)
    collector = Collector(settings)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: collector.stop())
    if args.live:
        from collector.run.live import run_with_live_view

        run_with_live_view(collector, args.duration)
    else:
        log.info("stratmon run: %d sources, state in %s", len(collector.sources), settings.state_dir)
        collector.run(duration=args.duration)
    counters = collector.counters
    log.info(
        "stopped: %d fills in, %d rejected, %d duplicates",
        counters.fills_in,
        collector.checker.rejected,
        counters.fills_duplicate,
    )
    return 0


def _run_router(settings: Settings, duration: float | None) -> int:
    """Bus mode: this process routes the sources to the bus; `stratmon worker` and `stratmon aggregate` book."""
    import threading

    from collector.run.bus_router import BusRouter

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    router = BusRouter(settings, stopping)
    log.info("stratmon run (router): %d sources → %d partitions", len(router.sources), settings.bus.partitions)  # type: ignore[union-attr]
    asyncio.run(router.run(duration))
    log.info(
        "stopped: %d fills routed, %d rejected, %d duplicates",
        router.fills_in,
        router.checker.rejected,
        router.duplicates,
    )
    return 0


def _until_signal(main: Callable[[asyncio.Event], Coroutine[Any, Any, Any]]) -> None:
    """Run `main(stopping)` in an event loop; SIGTERM/SIGINT set `stopping` (it checkpoints and returns)."""

    async def run() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await main(stopping)

    asyncio.run(run())


def cmd_worker(args: argparse.Namespace) -> int:
    from collector.run.bus_common import bus_config
    from collector.run.bus_worker import parse_partitions, run_workers

    settings = _settings(args)
    try:
        span = parse_partitions(args.partitions, bus_config(settings).partitions)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    log.info("stratmon worker: partitions %d-%d", span.start, span.stop - 1)
    _until_signal(lambda stopping: run_workers(settings, span, stopping))
    return 0


def cmd_aggregate(args: argparse.Namespace) -> int:
    from collector.run.bus_aggregator import run_aggregator

    settings = _settings(args)
    _until_signal(lambda stopping: run_aggregator(settings, stopping))
    return 0


def _time_arg(text: str) -> int:
    from collector.model import RejectedRecord, parse_timestamp

    value: int | str = int(text) if text.isdigit() else text
    try:
        return parse_timestamp(value, "time")
    except RejectedRecord as exc:
        raise UserError(f"{text!r}: expected an RFC 3339 time (2024-03-01T00:00:00Z) or epoch ns: {exc}") from None


def cmd_rollup(args: argparse.Namespace) -> int:
    from collector.jobs.rollups import Rollup
    from collector.store.connect import open_reader, open_writer

    settings = _settings(args)
    start, end = _time_arg(args.start), _time_arg(args.end)
    if end <= start:
        raise UserError("--to must be after --from")
    reader, writer = open_reader(settings), open_writer(settings)
    try:
        for width in args.window or settings.jobs.rollups:
            result = Rollup(settings, width).backfill(reader, writer, start, end)
            print(f"perf_{width}: {result.windows} windows, {result.points} points")
    finally:
        reader.close()
        writer.close()
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    from collector.jobs.scheduler import JOBS
    from collector.store.connect import open_writer

    if args.action == "list":
        print("\n".join(JOBS))
        return 0
    if args.name not in JOBS:
        raise UserError(f"unknown job {args.name!r}; jobs: {', '.join(JOBS)}")
    settings = _settings(args)
    writer = open_writer(settings)
    try:
        print(JOBS[args.name](settings, writer))
    finally:
        writer.close()
    return 0


def cmd_grafana(args: argparse.Namespace) -> int:
    from collector.grafana.build import build, stale, write_alerting
    from collector.grafana.checker import check_dashboard, check_directory
    from collector.grafana.names import DASHBOARDS

    rules = args.rules or _settings(args).alerts.rules
    if args.action == "alerting":  # at container start: contact points only for the secrets this environment sets
        for path in write_alerting(rules, args.out, os.environ):
            print(path)
        if problems := check_directory(args.out, environ=os.environ):
            raise RunFailed("Grafana would reject the alerting files:\n  " + "\n  ".join(problems))
        return 0
    if args.action == "build":
        for path in build(rules, args.out):
            print(path)
    else:
        outdated = stale(rules, args.out)
        if outdated:
            raise RunFailed(f"out of date with {rules} (run `stratmon grafana build`): {', '.join(outdated)}")
    problems = check_directory(args.out / "provisioning" / "alerting")
    for uid in DASHBOARDS.values():
        path = args.out / "dashboards" / f"{uid}.json"
        problems += check_dashboard(json.loads(path.read_text(encoding="utf-8")), uid)
    if problems:
        raise RunFailed("Grafana would reject the provisioning files:\n  " + "\n  ".join(problems))
    print("provisioning files are valid" + (" and up to date" if args.action == "check" else ""))
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    from collector.alerts.notify.dispatcher import build_notifiers
    from collector.alerts.rules import load_rules

    path = args.rules or _settings(args).alerts.rules
    rules = load_rules(path)
    table = Table(title=str(path))
    for column in ("rule", "level", "kind", "condition", "severity", "for", "notify", "delivery"):
        table.add_column(column)
    for rule in rules.rules:
        table.add_row(
            rule.name,
            rule.level,
            rule.kind,
            rule.describe(),
            rule.severity,
            f"{rule.for_:g}s",
            ",".join(rule.notify),
            ("collector" if rule.fast_path else "grafana") + (" + grafana" if rule.fast_path and rule.grafana else ""),
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    _, problems = build_notifiers(rules)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return 0


def cmd_optimize(args: argparse.Namespace) -> int:
    if args.action == "replay":
        return cmd_optimize_replay(args)
    if args.pnl or args.fills or args.influx or args.decisions or args.json:
        raise UserError("--pnl/--fills/--influx/--decisions/--json belong to `stratmon optimize replay`")
    from collector.optimize.job import optimize
    from collector.store.connect import open_writer

    settings = _settings(args)
    writer = open_writer(settings)
    try:
        results = optimize(settings, writer, dry_run=args.dry_run)
    finally:
        writer.close()
    table, in_place = suggestions_table(results, args.dry_run)
    Console(width=None if sys.stdout.isatty() else 220).print(table)
    if in_place:
        print(f"{in_place} suggestions need no change (the parameter store already has the value): not listed")
    return 0


def suggestions_table(results: Sequence[Result], dry_run: bool) -> tuple[Table, int]:
    """The optimizer's suggestions as a table, and how many were left out because nothing would change."""
    table = Table(title="suggestions" + (" (dry run)" if dry_run else ""))
    for column in ("rule", "target", "change", "status", "confidence", "risk", "rationale"):
        table.add_column(column)
    changes = [r for r in results if not r.outcome.decision.unchanged]
    for result in changes:
        s = result.suggestion
        value = result.outcome.decision.value
        old = result.outcome.record.old if result.outcome.record is not None else s.old  # the store's value
        table.add_row(
            s.rule,
            f"{s.strategy}/{s.account}",
            f"{s.param}: {old} → {value if value is not None else s.new}",
            result.status + (f" ({result.outcome.decision.reason})" if result.outcome.decision.reason else ""),
            f"{s.confidence:.2f}",
            s.risk,
            s.rationale,
        )
    return table, len(results) - len(changes)


def cmd_optimize_replay(args: argparse.Namespace) -> int:
    from collector.optimize.replay import replay
    from collector.optimize.replay_output import load_panel, render, write_decisions
    from collector.optimize.rules import load_optimization

    settings = _settings(args)
    if args.warmup < 2 or args.placebo < 0:
        raise UserError("optimize replay: --warmup must be ≥ 2 and --placebo ≥ 0")
    config = load_optimization(args.rules or settings.optimize.rules)
    if args.decisions:
        try:
            args.decisions.open("a").close()  # fail now, not after the replay
        except OSError as exc:
            raise UserError(f"--decisions {args.decisions}: {exc.strerror or exc}") from None
    panel = load_panel(settings, args.pnl, args.fills, args.influx)
    try:
        result = replay(config, panel, warmup=args.warmup, placebo=args.placebo, seed=args.seed)
    except ValueError as exc:
        raise UserError(f"optimize replay: {exc}") from None
    if args.decisions:
        write_decisions(args.decisions, panel, result)
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        render(result, Console(width=None if sys.stdout.isatty() else 160))
    return 0


def cmd_changes(args: argparse.Namespace) -> int:
    import time as clock

    from collector.optimize.apply import Applier
    from collector.optimize.job import load_config

    applier = Applier(load_config(_settings(args)))
    if args.action == "list":
        table = Table(title=str(applier.audit.path))
        for column in ("id", "time", "action", "target", "param", "old → new", "rule"):
            table.add_column(column)
        for r in applier.audit.records():
            table.add_row(r.id, r.time, r.action, f"{r.strategy}/{r.account}", r.param, f"{r.old} → {r.new}", r.rule)
        Console(width=None if sys.stdout.isatty() else 200).print(table)
        return 0
    records = applier.audit.records()
    # rollback takes applied changes only; show any record
    known = [r.id for r in records if args.action == "show" or r.action == "apply"]
    if not args.id or args.id not in known:
        what = "no change" if args.action == "show" else "no applied change"
        raise UserError(
            (f"{what} {args.id!r}; " if args.id else f"stratmon changes {args.action} needs a change id; ")
            + _known_ids(known, str(applier.audit.path))
        )
    if args.action == "show":
        record = next(r for r in records if r.id == args.id)
        print(json.dumps(record.__dict__, indent=2, default=str))
        return 0
    outcome = applier.rollback(args.id, reason=args.reason, now_ns=clock.time_ns())
    if not outcome.decision.applied or outcome.record is None:
        raise UserError(f"not rolled back: {outcome.decision.reason}")
    print(f"rolled back {args.id}: {outcome.record.param} {outcome.record.old} → {outcome.record.new}")
    return 0


def _known_ids(ids: list[str], audit: str, show: int = 10) -> str:
    """`ids: a, b, c` (the newest `show` of them) or that there are none, naming the audit log."""
    if not ids:
        return f"there are none in {audit}"
    newest = ids[-show:]
    more = f" (and {len(ids) - show} older; `stratmon changes list`)" if len(ids) > show else ""
    return f"ids in {audit}: {', '.join(newest)}{more}"


def cmd_init(args: argparse.Namespace) -> int:
    from collector.scaffold import init_deployment

    for path in init_deployment(args.dir, force=args.force):
        print(path)
    print(f"a deployment in {args.dir}: see {args.dir / 'README.md'} for the next steps", file=sys.stderr)
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    import shtab

    sys.stdout.write(shtab.complete(build_parser(), shell=args.shell))
    return 0


def cmd_influx(args: argparse.Namespace) -> int:
    # the config's own server (state_dir/influxdb), the one its other commands find: never another config's
    server = LocalInfluxd(args.dir if args.dir is not None else _settings(args).state_dir / "influxdb")
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


def _output_format(*choices: str) -> dict[str, Any]:
    """`--format` options: always the output format; an input format there gets a pointer to --input-format."""

    def parse(value: str) -> str:
        if value in INPUT_FORMATS and value not in choices:
            raise argparse.ArgumentTypeError(f"{value!r} is an input format: use --input-format {value}")
        return value

    return {"type": parse, "choices": choices, "help": "output format"}


def build_parser() -> argparse.ArgumentParser:
    def global_options(defaults: bool) -> argparse.ArgumentParser:
        # Accepted before and after the command; after it they must not reset what came before.
        options = argparse.ArgumentParser(add_help=False)
        default = None if defaults else argparse.SUPPRESS
        options.add_argument("--config", default=default, help="YAML settings file (default: $STRATMON_CONFIG)")
        options.add_argument(
            "--log-level",
            type=str.upper,
            choices=LEVELS,
            default=default,
            help="default: INFO for run, else WARNING (case-insensitive)",
        )
        options.add_argument(
            "--log-format", choices=["text", "json"], default=default, help="json: one object per line (default text)"
        )
        return options

    common = global_options(defaults=False)
    parser = argparse.ArgumentParser(prog="stratmon", description=__doc__, parents=[global_options(defaults=True)])
    parser.add_argument("--version", action="version", version=f"stratmon {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    ingest = sub.add_parser("ingest", parents=[common], help="validate fills files and write them to InfluxDB")
    ingest.add_argument("paths", nargs="+", metavar="PATH", help="JSONL/CSV files or FIX logs; - reads stdin")
    ingest.add_argument(
        "--input-format", dest="format_in", choices=INPUT_FORMATS, help="default: from the extension/content"
    )
    ingest.add_argument("--format", default="text", **_output_format("text", "json"))
    ingest.add_argument("--map", type=Path, metavar="PROFILE.yaml", help="column map for other CSV/JSON layouts")
    ingest.add_argument("--dead-letter", type=Path, help="where rejected records go (JSONL)")
    ingest.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    ingest.set_defaults(func=cmd_ingest)

    report = sub.add_parser("report", parents=[common], help="all metrics at every level from fills files")
    report.add_argument("paths", nargs="+", metavar="PATH", help="JSONL/CSV fills files; - reads stdin")
    report.add_argument("--format", default="table", **_output_format("json", "csv", "table"))
    report.add_argument("--level", choices=["portfolio", "account", "strategy", "book"], help="only this level")
    report.add_argument("--marks", nargs="+", metavar="PATH", help="marks files ({ts, symbol, price} records)")
    report.add_argument(
        "--input-format", dest="format_in", choices=INPUT_FORMATS, help="default: from extension/content"
    )
    report.add_argument("--map", type=Path, metavar="PROFILE.yaml", help="column map for other CSV/JSON layouts")
    report.add_argument("--dead-letter", type=Path, help="where rejected records go (JSONL)")
    report.add_argument("--html", type=Path, metavar="OUT", help="write a self-contained HTML page with plots")
    report.set_defaults(func=cmd_report)

    query = sub.add_parser("query", parents=[common], help="run an InfluxQL statement")
    query.add_argument("statement", metavar="INFLUXQL")
    query.add_argument("--format", default="table", **_output_format("table", "csv", "json"))
    query.set_defaults(func=cmd_query)

    run = sub.add_parser("run", parents=[common], help="the collector: sources → engine → InfluxDB, jobs")
    run.add_argument("--duration", type=float, help="stop after this many seconds (default: until SIGTERM)")
    run.add_argument("--live", action="store_true", help="show the live terminal view")
    run.set_defaults(func=cmd_run)

    worker = sub.add_parser("worker", parents=[common], help="bus mode: book partitions A-B from the bus")
    worker.add_argument("--partitions", required=True, help="A-B or A: 0-based, within bus.partitions")
    worker.set_defaults(func=cmd_worker)

    aggregate = sub.add_parser("aggregate", parents=[common], help="bus mode: strategy/account/portfolio series")
    aggregate.set_defaults(func=cmd_aggregate)

    rollup = sub.add_parser("rollup", parents=[common], help="backfill perf_1m/1h/1d between two times")
    rollup.add_argument("--from", dest="start", required=True, help="RFC 3339 time or epoch ns")
    rollup.add_argument("--to", dest="end", required=True, help="RFC 3339 time or epoch ns")
    rollup.add_argument("--window", action="append", choices=["1m", "1h", "1d"], help="default: jobs.rollups")
    rollup.set_defaults(func=cmd_rollup)

    jobs = sub.add_parser("jobs", parents=[common], help="run one scheduled job now, or list them")
    jobs.add_argument("action", choices=["run", "list"])
    jobs.add_argument("name", nargs="?", help="job name (see `stratmon jobs list`)")
    jobs.set_defaults(func=cmd_jobs)

    grafana = sub.add_parser("grafana", parents=[common], help="build or check Grafana provisioning files")
    grafana.add_argument(
        "action",
        choices=["build", "check", "alerting"],
        help="check: committed files equal a fresh build; alerting: write provisioning/alerting for this environment",
    )
    grafana.add_argument("--rules", type=Path, help="alert rules file (default: alerts.rules of the config)")
    grafana.add_argument(
        "--out",
        type=Path,
        default=Path("grafana"),
        help="output directory (default grafana/; for alerting: the alerting directory itself)",
    )
    grafana.set_defaults(func=cmd_grafana)

    alerts = sub.add_parser("alerts", parents=[common], help="validate and list the alert rules")
    alerts.add_argument("action", choices=["check"])
    alerts.add_argument("--rules", type=Path, help="alert rules file (default: alerts.rules of the config)")
    alerts.set_defaults(func=cmd_alerts)

    optimize = sub.add_parser(
        "optimize",
        parents=[common],
        help="evaluate optimization rules, apply low-risk ones; `optimize replay`: walk-forward on your history",
    )
    optimize.add_argument("action", nargs="?", choices=["replay"], help="replay: walk-forward counterfactual")
    optimize.add_argument("--dry-run", action="store_true", help="decide and audit, but change nothing")
    optimize.add_argument("--pnl", type=Path, help="replay: CSV with date,strategy,pnl[,account,trades,wins,capital]")
    optimize.add_argument("--fills", nargs="+", help="replay: fills files (daily PnL per book from the engine)")
    optimize.add_argument("--influx", action="store_true", help="replay: the perf_1d history in InfluxDB")
    optimize.add_argument("--rules", type=Path, help="replay: optimization rules (default optimize.rules)")
    optimize.add_argument("--warmup", type=int, default=120, help="replay: days before the first decision")
    optimize.add_argument("--placebo", type=int, default=200, help="replay: placebo copies (0 = none)")
    optimize.add_argument("--seed", type=int, default=0, help="replay: bootstrap and placebo random seed")
    optimize.add_argument("--decisions", type=Path, help="replay: write date,strategy,account,multiplier here")
    optimize.add_argument("--json", action="store_true", help="replay: print the result as JSON")
    optimize.set_defaults(func=cmd_optimize)

    changes = sub.add_parser("changes", parents=[common], help="audited parameter changes: list, show, roll back")
    changes.add_argument("action", choices=["list", "show", "rollback"])
    changes.add_argument("id", nargs="?", help="change id")
    changes.add_argument("--reason", default="rolled back by a person", help="recorded in the audit log")
    changes.set_defaults(func=cmd_changes)

    init = sub.add_parser("init", parents=[common], help="write a new deployment: config, rules/, .env.example, README")
    init.add_argument("dir", type=Path, metavar="DIR", help="directory to write (created if missing)")
    init.add_argument("--force", action="store_true", help="overwrite files that already exist")
    init.set_defaults(func=cmd_init)

    completion = sub.add_parser("completion", parents=[common], help="print a shell completion script")
    completion.add_argument(
        "shell", choices=["bash", "zsh"], help="e.g. `stratmon completion bash > /etc/bash_completion.d/stratmon`"
    )
    completion.set_defaults(func=cmd_completion)

    influx = sub.add_parser("influx", parents=[common], help="a private influxd for tests and the demo")
    influx.add_argument("action", choices=["start", "stop", "status"])
    influx.add_argument("--dir", type=Path, help="data directory (default: state_dir/influxdb of the config)")
    influx.add_argument("--port", type=int, help="HTTP port on 127.0.0.1 (default: a free one)")
    influx.set_defaults(func=cmd_influx)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure(
        args.log_level or ("INFO" if args.command in ("run", "worker", "aggregate") else "WARNING"),
        args.log_format or "text",
    )
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        return handler(args)
    except (UserError, RunFailed, QueryError) as exc:
        print(f"stratmon: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    except KeyboardInterrupt:
        return 130
