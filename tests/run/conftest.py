"""Helpers for collector tests: settings with sources, a collector running in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from collector.config import Settings
from collector.run.collector import Collector
from collector.store.reader import QueryError, Reader


def with_sources(settings: Settings, *sources: dict[str, Any], **sections: dict[str, Any]) -> Settings:
    """The test settings plus sources (and section overrides), re-validated like a config file."""
    data = settings.model_dump()
    data["sources"] = list(sources)
    data["run"] = {"flush_interval": 0.1, "snapshot_interval": 0.5, "health_interval": 0.5} | sections.pop("run", {})
    data["jobs"] = {"enabled": False} | sections.pop("jobs", {})
    data["alerts"] = {"enabled": False} | sections.pop("alerts", {})
    for name, values in sections.items():
        data[name] = data[name] | values
    return Settings(**data)


@contextmanager
def running(collector: Collector) -> Iterator[Collector]:
    """Run the collector in a thread until the block ends, then stop it cleanly (drain, flush, checkpoint)."""
    started = threading.Event()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            collector.run(started=started.set)
        except BaseException as exc:
            failure.append(exc)
            started.set()

    thread = threading.Thread(target=work, name="collector-under-test")
    thread.start()
    started.wait(30)
    try:
        if failure:
            raise failure[0]
        yield collector
    finally:
        collector.stop()
        thread.join(60)
        assert not thread.is_alive(), "collector did not stop"
    if failure:
        raise failure[0]


def wait_for(condition: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def scalar(reader: Reader, statement: str) -> float:
    """The first value of a query's answer; 0 while the database or measurement does not exist yet."""
    try:
        frame = reader.query(statement)
    except QueryError:
        return 0
    return 0 if frame.empty else float(frame.to_numpy()[0, 0])
