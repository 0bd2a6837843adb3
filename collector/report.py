"""`stratmon report`: every metric at every level from fills files, without InfluxDB."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from collector.config import Settings
from collector.engine.engine import Engine, FillResult
from collector.engine.revise import BookLog, RevisionError, revise
from collector.engine.series import LEVELS, METRIC_FIELDS
from collector.ingest import Inputs, accepted_fills
from collector.intake import Intake
from collector.model import Fill, FillValidator, Mark, RejectedRecord, validate_mark
from collector.sources.colmap import ColumnMap
from collector.sources.deadletter import DeadLetter
from collector.sources.inputs import detect_input_format
from collector.sources.records import detect_format, iter_file

BATCH = 5000  # events per engine call (the compiled kernel's fixed cost is per call)
TABLE_COLUMNS = (
    "nav",
    "equity",
    "realized_pnl",
    "unrealized_pnl",
    "fees",
    "max_drawdown",
    "max_drawdown_pct",
    "return_cum",
    "trades",
    "win_rate",
    "profit_factor",
    "sharpe",
    "sortino",
    "fills",
)
# how the table rounds for people (JSON and CSV keep full precision)
PERCENT_COLUMNS = frozenset({"max_drawdown_pct", "drawdown_pct", "return_cum", "win_rate"})
RATIO_COLUMNS = frozenset({"profit_factor", "payoff_ratio", "sharpe", "sortino", "slippage_bps_avg"})


@dataclass
class Report:
    engine: Engine
    accepted: int
    rejected: int
    duplicates: int
    marks: int
    dead_letter: DeadLetter
    all_rejected: list[str] = field(default_factory=list)  # inputs whose every record was rejected
    no_fills: list[str] = field(default_factory=list)  # why inputs with skipped records gave no fill

    def levels(self, level: str | None = None) -> dict[str, list[dict[str, Any]]]:
        return self.engine.rows(level)


def new_engine(settings: Settings) -> Engine:
    engine = Engine(settings.capital.accounts, settings.capital.default, settings.metrics.day_basis)
    engine.sample = settings.metrics.sample()
    return engine


def _read_marks(paths: list[str], fmt: str | None, letters: DeadLetter) -> list[Mark]:
    marks = []
    for path in paths:
        for record in iter_file(path, detect_format(path, fmt)):
            if record.error is not None:
                letters.add(record.source, record.raw_text, record.error)
                continue
            try:
                marks.append(validate_mark(record.data))
            except RejectedRecord as exc:
                letters.add(record.source, record.raw_text, str(exc))
    return marks


Observer = Callable[[Engine, Fill | Mark, FillResult | None], None]


def read_events(
    settings: Settings,
    paths: list[str],
    fmt: str | None = None,
    marks_paths: list[str] | None = None,
    dead_letter: Path | None = None,
    profile: ColumnMap | None = None,
) -> tuple[list[Fill | Mark], Intake, int, DeadLetter]:
    """Fills validated like ingest (rejects dead-lettered, duplicates dropped) and marks, in time order."""
    letters = DeadLetter(dead_letter or settings.ingest.dead_letter)
    intake = Intake(FillValidator(settings.ingest.max_future_skew), letters, settings.ingest.dedupe_window)
    inputs = Inputs(paths, [detect_input_format(path, fmt) for path in paths], profile)
    try:
        events: list[Fill | Mark] = list(accepted_fills(intake, inputs))
        marks = _read_marks(marks_paths or [], fmt, letters)
        events.extend(marks)
    finally:
        letters.close()
    events.sort(key=lambda event: event.ts)  # stable: equal times keep file order
    return events, intake, len(marks), letters


def build_report(
    settings: Settings,
    paths: list[str],
    fmt: str | None = None,
    marks_paths: list[str] | None = None,
    dead_letter: Path | None = None,
    observers: Sequence[Observer] = (),
    profile: ColumnMap | None = None,
) -> Report:
    """Validate like ingest, then replay fills and marks in time order through the engine."""
    events, intake, marks, letters = read_events(settings, paths, fmt, marks_paths, dead_letter, profile)
    engine = new_engine(settings)
    engine.log = BookLog(settings.ingest.bust_window)
    chunk: list[Fill | Mark] = []  # booked in batches; one event at a time when observers look after each
    for event in events:
        if isinstance(event, Fill) and event.action != "fill":
            _book(engine, chunk, observers)
            try:
                revise(engine, event)
            except RevisionError as exc:
                intake.reject_event(event, str(exc))
            continue
        chunk.append(event)
        if observers or len(chunk) >= BATCH:
            _book(engine, chunk, observers)
    _book(engine, chunk, observers)
    letters.close()
    stats = intake.stats
    return Report(
        engine, stats.accepted, stats.rejected, stats.duplicates, marks, letters, stats.all_rejected, stats.no_fills
    )


def _book(engine: Engine, chunk: list[Fill | Mark], observers: Sequence[Observer]) -> None:
    """Book the chunk's events (then empty it), telling each observer about each event."""
    if not chunk:
        return
    result = engine.on_events(chunk)
    for index, event in enumerate(chunk):
        booked = FillResult(result.realized[index], result.trips.get(index)) if isinstance(event, Fill) else None
        for observe in observers:
            observe(engine, event, booked)
    chunk.clear()


def cell(column: str, value: Any) -> str:
    """Percentages with 2 decimals, ratios with 2, money in whole units (cents below 100); — = undefined."""
    if value is None:
        return "—"
    if not isinstance(value, float):
        return str(value)
    if column in PERCENT_COLUMNS:
        return f"{value:.2%}"
    if column in RATIO_COLUMNS or abs(value) < 100:
        return f"{value:,.2f}"
    return f"{value:,.0f}"


def render(report: Report, fmt: str, level: str | None) -> str:
    levels = report.levels(level)
    if fmt == "json":
        return json.dumps({"levels": levels}, indent=1) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=["level", "account", "strategy", *METRIC_FIELDS])
        writer.writeheader()
        for name in LEVELS:
            writer.writerows(levels.get(name, []))
        return out.getvalue()
    console = Console(width=None if sys.stdout.isatty() else 200, record=True, file=io.StringIO())
    for name in LEVELS:
        if name not in levels:
            continue
        table = Table(title=f"{name} ({len(levels[name])})", title_justify="left")
        for column in ("account", "strategy", *TABLE_COLUMNS):
            table.add_column(column, justify="left" if column in ("account", "strategy") else "right")
        for row in levels[name]:
            table.add_row(*(cell(c, row[c]) for c in ("account", "strategy", *TABLE_COLUMNS)))
        console.print(table)
    return console.export_text()


def rejects_summary(report: Report) -> str | None:
    if not report.rejected:
        return None
    lines = [f"{report.rejected} records rejected (all with reasons in {report.dead_letter.path}), e.g.:"]
    lines += [f"  {source}: {error}" for source, error in report.dead_letter.samples]
    return "\n".join(lines)
