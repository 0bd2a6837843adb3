"""The checkpoint as data: an exact round trip, damage detected and quarantined, no code executed on load."""

from __future__ import annotations

import json
import logging
import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest

from collector.config import Settings
from collector.engine.engine import Engine
from collector.model import Fill, FillValidator, Mark
from collector.run import checkpoint, state_data
from collector.run.checkpoint import Checkpoint, Counters, DamagedCheckpoint
from collector.run.collector import Collector
from collector.sources.synthetic import synthetic_fills
from collector.store.lineproto import UniqueTimestamps
from tests.helpers import fill as fill_record
from tests.run.conftest import running, wait_for, with_sources

CAPITAL = {"ACC01": 2e6}


def _fills(count: int, seed: int) -> list[Fill]:
    validator = FillValidator(86_400.0)
    return [validator.validate(r, 1_800_000_000 * 10**9) for r in synthetic_fills(count, seed=seed, symbols=8)]


def _state(engine: Engine) -> object:
    """Everything in the engine as comparable values: its arrays, the strings behind their ids, books, marks."""
    state = state_data.engine_state(engine)
    return (
        engine.clock_ns,
        {name: array.tobytes() for name, array in state.arrays.items()},
        state.keys,
        state.symbols,
        {k: (sorted(s.accounts), s.holdings.keys()) for k, s in engine.series.items()},
        {k: ([x.key for x in b.chain], b.positions) for k, b in engine.books.items()},
        engine.marks,
        engine.position_ids,
        engine.holding_ids,
    )


def _sample(count: int = 3000) -> Checkpoint:
    engine = Engine(CAPITAL, 1e6)
    stamps = UniqueTimestamps(1000)
    for i, fill in enumerate(_fills(count, seed=5)):
        engine.on_fill(fill)
        stamps.assign(fill.account, fill.ts, fill.fill_id)
        if i % 100 == 0:
            engine.on_mark(Mark(ts=fill.ts, symbol="SYM001", price=fill.price * 1.01))
    return Checkpoint(engine, stamps, (2, 1234), [], {"files": {"a.jsonl": [1, 2, 3]}}, Counters(count, 1, 30, 9))


def _load(path: Path) -> Checkpoint | None:
    return checkpoint.load(path, CAPITAL, 1e6, 1000)


def test_round_trip_is_exact_and_the_engine_continues_identically(tmp_path: Path) -> None:
    saved = _sample()
    path = tmp_path / "checkpoint.json"
    checkpoint.save(path, saved)
    loaded = _load(path)
    assert loaded is not None
    assert _state(loaded.engine) == _state(saved.engine)
    exported, restored = saved.stamps.export(), loaded.stamps.export()
    assert all(np.array_equal(exported[name], restored[name]) for name in ("keys", "owners"))
    assert len(saved.stamps) == len(loaded.stamps) > 0
    assert (loaded.seen_position, loaded.tokens, loaded.counters) == ((2, 1234), saved.tokens, saved.counters)
    for fill in _fills(2000, seed=6):  # the restored engine behaves exactly like the original
        saved.engine.on_fill(fill)
        loaded.engine.on_fill(fill)
    assert _state(loaded.engine) == _state(saved.engine)
    assert loaded.engine.rows() == saved.engine.rows()


def test_a_checkpoint_before_the_first_fill_round_trips(tmp_path: Path) -> None:
    empty = Checkpoint(Engine(CAPITAL, 1e6), UniqueTimestamps(1000))  # arrays with no rows (no lots yet)
    checkpoint.save(tmp_path / "checkpoint.json", empty)
    loaded = _load(tmp_path / "checkpoint.json")
    assert loaded is not None and _state(loaded.engine) == _state(empty.engine) and len(loaded.stamps) == 0


def test_every_single_byte_corruption_is_detected(tmp_path: Path) -> None:
    raw = checkpoint.encode(_sample(300))
    rng = random.Random(3)
    for _ in range(400):
        damaged = bytearray(raw)
        at = rng.randrange(len(damaged))
        damaged[at] = (damaged[at] + rng.randrange(1, 256)) % 256
        with pytest.raises(DamagedCheckpoint):
            checkpoint.decode(bytes(damaged), CAPITAL, 1e6, 1000)
    for cut in (0, 10, len(raw) // 2, len(raw) - 1):
        with pytest.raises(DamagedCheckpoint):
            checkpoint.decode(raw[:cut], CAPITAL, 1e6, 1000)


def test_a_planted_pickle_is_quarantined_not_executed(
    tmp_path: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "pwned"

    class Planted:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    state = Path(settings.state_dir) / "collector"
    state.mkdir(parents=True)
    (state / "checkpoint.json").write_bytes(pickle.dumps(Planted()))
    with caplog.at_level(logging.WARNING):
        collector = Collector(settings, sources=[])
    assert not marker.exists()
    assert collector.counters.fills_in == 0
    assert not (state / "checkpoint.json").exists()
    assert [p.name.split(".damaged-")[0] for p in state.glob("*.damaged-*")] == ["checkpoint.json"]
    warnings = [r.getMessage() for r in caplog.records if "checkpoint unusable" in r.getMessage()]
    assert len(warnings) == 1 and "To recover" in warnings[0] and "Lost:" in warnings[0]


def test_a_directory_where_the_checkpoint_belongs_is_moved_aside(tmp_path: Path, settings: Settings) -> None:
    path = Path(settings.state_dir) / "collector" / "checkpoint.json"
    path.mkdir(parents=True)
    collector = Collector(settings, sources=[])
    assert collector.counters.fills_in == 0 and not path.exists()
    assert len(list(path.parent.glob("checkpoint.json.damaged-*"))) == 1


def test_a_checkpoint_that_cannot_be_written_does_not_end_the_run(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "fills.jsonl"
    path.write_text("".join(json.dumps(fill_record(fill_id=f"c{i}")) + "\n" for i in range(20)))
    collector = Collector(with_sources(settings, {"type": "file", "paths": [str(path)]}))
    blocker = Path(settings.state_dir) / "collector" / "checkpoint.tmp"
    blocker.mkdir(parents=True)  # where the checkpoint is written first: the write fails like on a full disk
    with running(collector):
        wait_for(lambda: "cannot write the checkpoint" in (collector.problem() or ""), 20, "the problem reported")
        assert collector.counters.fills_in == 20  # the run goes on
        blocker.rmdir()
        wait_for(lambda: collector.problem() is None, 20, "a checkpoint written again")
    assert (Path(settings.state_dir) / "collector" / "checkpoint.json").exists()
