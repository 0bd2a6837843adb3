"""Shared fixtures: one private influxd per test session (the same code as `stratmon influx start`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.config import Settings
from collector.store.influxd import InfluxdState, LocalInfluxd
from collector.store.reader import Reader
from collector.store.transport import Endpoint


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxdState]:
    server = LocalInfluxd(tmp_path_factory.mktemp("influxd"))
    state = server.start()
    yield state
    server.stop()


@pytest.fixture
def database(request: pytest.FixtureRequest) -> str:
    """A database of this test's own, so tests never see each other's points."""
    return "t_" + re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:60]


@pytest.fixture
def settings(tmp_path: Path, influxd: InfluxdState, database: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in ("STRATMON_INFLUX_URL", "STRATMON_INFLUX_DATABASE", "STRATMON_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return Settings(
        state_dir=tmp_path / "state",
        influx={"url": influxd.url, "database": database, "flush_interval": 0.2},
        spool={"dir": tmp_path / "spool"},
        ingest={"dead_letter": tmp_path / "dead.jsonl"},
    )


@pytest.fixture
def reader(settings: Settings) -> Iterator[Reader]:
    assert settings.influx.url is not None
    reader = Reader(Endpoint.from_config(settings.influx, settings.influx.url))
    yield reader
    reader.close()
