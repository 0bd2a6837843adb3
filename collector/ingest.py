"""`stratmon ingest`: files → validation → `fills` points in InfluxDB, with a summary of what happened."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from rich.progress import Progress

from collector.config import Settings
from collector.engine.engine import Engine
from collector.engine.revise import RevisionError
from collector.errors import RunFailed
from collector.intake import Intake
from collector.model import Fill, FillValidator
from collector.revisions import apply_revision
from collector.sources.colmap import ColumnMap
from collector.sources.deadletter import DeadLetter
from collector.sources.inputs import InputFormat, detect_input_format, read_input, read_lines
from collector.sources.records import RawRecord, decode_json_line, jsonl_lines
from collector.store.connect import open_reader, open_writer
from collector.store.errors import SpoolFullError, WriteError
from collector.store.fillkeys import FillKeys, StoredKeys
from collector.store.lineproto import UniqueTimestamps, fill_point
from collector.store.writer import Writer

PROGRESS_MIN_LINES = 10_000
T = TypeVar("T")
# Fills per read of the stored keys they may clash with. A read scans every series of `fills` in the batch's
# time range (~15-30 us of influxd CPU per series, whether the range holds points or not), so few large reads;
# the first ones are small (x4 ramp from 2 writer batches) so that InfluxDB has points to write while the rest
# is decoded. 200k: 5 reads for 500k fills instead of 7 at 100k (the writer may then hold ~40 MB of batches).
KEY_BATCH = 200_000


@dataclass
class IngestSummary:
    accepted: int
    rejected: int
    duplicates: int
    written: int
    spooled_batches: int = 0
    failed: int = 0
    skipped: int = 0
    all_rejected: list[str] = field(default_factory=list)  # inputs whose every record was rejected
    no_fills: list[str] = field(default_factory=list)  # why inputs with skipped records gave no fill

    def contract(self) -> dict[str, int | str]:
        """The fixed `--json` shape; plus `error` when an input had records but gave no fill."""
        shape: dict[str, int | str] = {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "written": self.written,
        }
        errors = no_fill_messages(self.all_rejected, self.no_fills)
        if errors:
            shape["error"] = "; ".join(errors)
        return shape


def all_rejected_message(paths: list[str]) -> str:
    return f"every record of {', '.join(paths)} was rejected (reasons in the dead-letter file)"


def no_fill_messages(all_rejected: list[str], no_fills: list[str]) -> list[str]:
    """One line per problem: the inputs whose every record was rejected, each input that gave no fill."""
    return ([all_rejected_message(all_rejected)] if all_rejected else []) + no_fills


def _count_lines(path: str) -> int:
    count = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def _with_progress(items: Iterable[T], total: int, label: str) -> Iterator[T]:
    with Progress(transient=True) as progress:
        task = progress.add_task(label, total=total)
        for i, item in enumerate(items, 1):
            if i % 2000 == 0:
                progress.update(task, completed=i)
            yield item


def ingest_files(
    settings: Settings,
    paths: list[str],
    fmt: str | None = None,
    dead_letter: Path | None = None,
    show_progress: bool = False,
    profile: ColumnMap | None = None,
) -> IngestSummary:
    letters = DeadLetter(dead_letter or settings.ingest.dead_letter)
    intake = Intake(FillValidator(settings.ingest.max_future_skew), letters, settings.ingest.dedupe_window)
    formats = [detect_input_format(path, fmt) for path in paths]  # fail on a bad name before writing anything
    inputs = Inputs(paths, formats, profile)
    # the sender may hold a whole key batch, so the next one is decoded while this one is written
    writer = open_writer(settings, max_pending=KEY_BATCH // settings.influx.batch_size + 2)
    try:
        try:
            _ingest(settings, writer, intake, inputs, show_progress)
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
        skipped=intake.stats.skipped,
        all_rejected=intake.stats.all_rejected,
        no_fills=intake.stats.no_fills,
    )


def _ingest(settings: Settings, writer: Writer, intake: Intake, inputs: Inputs, show_progress: bool) -> None:
    """Fills in batches: realized PnL from the run's own FIFO books, keys checked against InfluxDB."""
    engine = Engine(bust_window=settings.ingest.bust_window, revalue=False)  # realized PnL per fill is all it needs
    reader = open_reader(settings)
    keys = FillKeys(UniqueTimestamps(), StoredKeys(reader))
    reads = ThreadPoolExecutor(1, thread_name_prefix="fill-keys")
    batch: list[Fill] = []
    limit = min(KEY_BATCH, 2 * writer.batch_size)

    def write_batch() -> None:
        nonlocal limit
        if not batch:
            return
        # InfluxDB answers the stored-key read while the batch is booked and serialized; the batch is still
        # read right before it is written (keys assigned from the answer, then handed to the writer)
        slots = reads.submit(keys.read, batch)
        realized = engine.on_events(batch).realized
        points = [fill_point(f, pnl) for f, pnl in zip(batch, realized, strict=True)]
        stamps = keys.assign(batch, slots.result())
        writer.write_lines([f"{p} {ts}" for p, ts in zip(points, stamps, strict=True)])
        batch.clear()
        limit = min(KEY_BATCH, 4 * limit)

    try:
        for fill in accepted_fills(intake, inputs, show_progress):
            if fill.action != "fill":  # a bust/correction: what came before it is booked and written first
                write_batch()
                try:
                    apply_revision(engine, fill, writer, keys, reader)
                except RevisionError as exc:
                    intake.reject_event(fill, str(exc))
                continue
            batch.append(fill)
            if len(batch) >= limit:
                write_batch()
        write_batch()
    finally:
        reads.shutdown()
        reader.close()


@dataclass
class Inputs:
    """What to read: paths, their formats, the column map."""

    paths: list[str]
    formats: list[InputFormat]
    profile: ColumnMap | None = None


def accepted_fills(intake: Intake, inputs: Inputs, show_progress: bool = False) -> Iterator[Fill]:
    """Valid, new fills of all inputs in order; rejects go to the intake's dead letters."""
    stats = intake.stats
    for path, file_format in zip(inputs.paths, inputs.formats, strict=True):
        before = (stats.accepted + stats.duplicates, stats.rejected, stats.skipped)
        if file_format == "jsonl" and inputs.profile is None:
            yield from _jsonl_fills(intake, path, show_progress)
        else:
            records: Iterable[RawRecord] = read_input(path, file_format, sys.stdin.buffer, inputs.profile)
            yield from _record_fills(intake, _progress(records, path, show_progress))
        if stats.accepted + stats.duplicates > before[0]:
            continue
        name = "stdin" if path == "-" else path
        if stats.rejected > before[1]:  # the reasons are in the dead-letter file
            stats.all_rejected.append(name)
        elif stats.skipped > before[2]:  # nothing dead-lettered: the message says why
            stats.no_fills.append(_no_fill_message(name, inputs.profile, stats.skipped - before[2], stats.skip_reason))


def _no_fill_message(name: str, profile: ColumnMap | None, skipped: int, reason: str | None) -> str:
    """Why an input whose every record was skipped (not a fill) gave no fill at all."""
    through = f" through {profile.origin}" if profile is not None else ""
    return f"{name}: no fill{through}: {skipped} record(s) skipped as not fills (e.g. {reason})"


def _jsonl_fills(intake: Intake, path: str, show_progress: bool) -> Iterator[Fill]:
    """JSON lines decoded straight into fills; a line that is not of the common shape goes the careful way."""
    name = "stdin" if path == "-" else path
    decode = intake.validator.decode_json
    now_ns = time.time_ns()
    for i, (lineno, line) in enumerate(jsonl_lines(_progress(read_lines(path, sys.stdin.buffer), path, show_progress))):
        if i % 1024 == 0:
            now_ns = time.time_ns()
        fill = decode(line, now_ns)
        fill = (
            intake.admit(fill)
            if fill is not None
            else intake.accept(decode_json_line(line, f"{name}:{lineno}"), now_ns)
        )
        if fill is not None:
            yield fill


def _record_fills(intake: Intake, records: Iterable[RawRecord]) -> Iterator[Fill]:
    now_ns = time.time_ns()
    for i, record in enumerate(records):
        if i % 1024 == 0:
            now_ns = time.time_ns()
        fill = intake.accept(record, now_ns)
        if fill is not None:
            yield fill


def _progress(items: Iterable[T], path: str, show_progress: bool) -> Iterable[T]:
    """`items` with a progress bar over the file's lines, when asked for and the file is large."""
    if show_progress and path != "-" and (total := _count_lines(path)) > PROGRESS_MIN_LINES:
        return _with_progress(items, total, Path(path).name)
    return items
