"""The jobs registry and their APScheduler wiring inside `stratmon run`.

Scheduling choices, deliberately:
- `coalesce=True`: each run catches up everything since its persisted watermark, so several
  missed runs (a suspended laptop, a long GC pause, a slow InfluxDB) collapse into one.
- `misfire_grace_time=None`: a late run still runs, however late; skipping it would only delay
  the catch-up to the next interval.
- `max_instances=1`: runs of one job never overlap, so two runs cannot race on the watermark.
- the first run starts immediately, which is what catches up windows missed while we were down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from collector.config import Settings
from collector.jobs.rollups import Rollup
from collector.store.connect import open_reader
from collector.store.writer import Writer

log = logging.getLogger(__name__)

Job = Callable[[Settings, Writer], str]


def _rollup_job(width: str) -> Job:
    def run(settings: Settings, writer: Writer) -> str:
        reader = open_reader(settings)
        try:
            result = Rollup(settings, width).catch_up(reader, writer)
        finally:
            reader.close()
        if result is None:
            return f"rollup_{width}: no perf data yet"
        return f"rollup_{width}: {result.windows} windows, {result.points} points"

    return run


def _optimize_job(settings: Settings, writer: Writer) -> str:
    from collector.optimize.job import optimize

    results = optimize(settings, writer)
    applied = sum(1 for r in results if r.status == "applied")
    return f"optimize: {len(results)} suggestions, {applied} applied"


JOBS: dict[str, Job] = {f"rollup_{width}": _rollup_job(width) for width in ("1m", "1h", "1d")}
JOBS["optimize"] = _optimize_job


def enabled_jobs(settings: Settings) -> list[str]:
    return [f"rollup_{width}" for width in settings.jobs.rollups]


def _interval(settings: Settings, name: str) -> float:
    return settings.optimize.every if name == "optimize" else settings.jobs.rollup_every


def start_scheduler(settings: Settings, writer: Writer) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone=UTC)
    names = enabled_jobs(settings)
    if settings.optimize.enabled and Path(settings.optimize.rules).is_file():
        names.append("optimize")
    for name in names:
        scheduler.add_job(
            _guarded,
            IntervalTrigger(seconds=_interval(settings, name)),
            args=(name, settings, writer),
            id=name,
            coalesce=True,
            misfire_grace_time=None,
            max_instances=1,
            next_run_time=datetime.now(UTC),
        )
    scheduler.start()
    return scheduler


def _guarded(name: str, settings: Settings, writer: Writer) -> None:
    """A failing run is logged and retried at the next interval; it never takes the collector down."""
    try:
        log.info("%s", JOBS[name](settings, writer))
    except Exception:
        log.exception("job %s failed; retrying at its next run", name)
