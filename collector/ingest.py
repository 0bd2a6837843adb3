"""`stratmon ingest`: files → validation → `fills` points in InfluxDB, with a summary of what happened."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.progress import Progress

from collector.config import Settings
from collector.errors import RunFailed
from collector.intake import Intake
from collector.model import Fill, FillValidator
from collector.sources.deadletter import DeadLetter
from collector.sources.records import Format, RawRecord, detect_format, iter_file
from collector.store.connect import open_writer
from collector.store.errors import SpoolFullError, WriteError
from collector.store.lineproto import UniqueTimestamps, fill_line
from collector.store.writer import Writer

PROGRESS_MIN_LINES = 10_000


@dataclass
class IngestSummary:
    accepted: int
    rejected: int
    duplicates: int
    written: int
    spooled_batches: int = 0
    failed: int = 0

    def contract(self) -> dict[str, int]:
        """The fixed `--json` shape."""
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "written": self.written,
        }


def _count_lines(path: str) -> int:
    count = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def _with_progress(records: Iterable[RawRecord], total: int, label: str) -> Iterator[RawRecord]:
    with Progress(transient=True) as progress:
        task = progress.add_task(label, total=total)
        for i, record in enumerate(records, 1):
            if i % 2000 == 0:
                progress.update(task, completed=i)
            yield record


def ingest_files(
    settings: Settings,
    paths: list[str],
    fmt: str | None = None,
    dead_letter: Path | None = None,
    show_progress: bool = False,
) -> IngestSummary:
    letters = DeadLetter(dead_letter or settings.ingest.dead_letter)
    intake = Intake(FillValidator(settings.ingest.max_future_skew), letters, settings.ingest.dedupe_window)
    formats = [detect_format(path, fmt) for path in paths]  # fail on a bad name before writing anything
    writer = open_writer(settings)
    try:
        try:
            _ingest(writer, intake, paths, formats, show_progress)
        finally:
            writer.close()  # flushes and drains the spool even when reading failed half-way
    except (SpoolFullError, WriteError) as exc:
        raise RunFailed(str(exc)) from None
    finally:
        letters.close()
    stats = writer.stats
    return IngestSummary(
        accepted=intake.stats.accepted,
        rejected=intake.stats.rejected,
        duplicates=intake.stats.duplicates,
        written=stats.written + stats.replayed,
        spooled_batches=writer.spooled_batches(),
        failed=stats.failed,
    )


def _ingest(writer: Writer, intake: Intake, paths: list[str], formats: list[Format], show_progress: bool) -> None:
    stamps = UniqueTimestamps()
    for fill in accepted_fills(intake, paths, formats, show_progress):
        series = f"{fill.account}|{fill.strategy}|{fill.symbol}|{fill.side}"
        writer.write(fill_line(fill, stamps.assign(series, fill.ts, fill.fill_id)))


def accepted_fills(
    intake: Intake, paths: list[str], formats: list[Format], show_progress: bool = False
) -> Iterator[Fill]:
    """Valid, new fills of all files in order; rejects go to the intake's dead letters."""
    for path, file_format in zip(paths, formats, strict=True):
        records: Iterable[RawRecord] = iter_file(path, file_format, sys.stdin.buffer)
        if show_progress and path != "-" and (total := _count_lines(path)) > PROGRESS_MIN_LINES:
            records = _with_progress(records, total, Path(path).name)
        now_ns = time.time_ns()
        for i, record in enumerate(records):
            if i % 1024 == 0:
                now_ns = time.time_ns()
            fill = intake.accept(record, now_ns)
            if fill is not None:
                yield fill
