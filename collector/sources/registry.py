"""The explicit registry of source kinds: config `type` → the class that runs it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from collector.config import SourceConfig
from collector.sources.base import Source
from collector.sources.filetail import FileTail
from collector.sources.fixsession import FixSession
from collector.sources.http import HttpSource
from collector.sources.simulator import SimulatorSource

SOURCE_TYPES: dict[str, Callable[[Any], Source]] = {
    "file": FileTail,
    "http": HttpSource,
    "simulator": SimulatorSource,
    "fix": FixSession,
}


def build_sources(configs: Sequence[SourceConfig]) -> list[Source]:
    return [SOURCE_TYPES[config.type](config) for config in configs]
