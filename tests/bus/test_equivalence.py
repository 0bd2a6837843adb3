"""Partitioned books + aggregator == one Engine, bit for bit, in process (router, workers, aggregator; no bus).

For P = 1 … 4 on random streams (marks, round trips, multipliers, fees, slippage, capital per account, day
boundaries, duplicate fills dropped at intake, parts cut under a small payload limit, replayed messages,
workers and the aggregator interleaved at random): every perf field of every series — books from the workers,
strategy/account/portfolio from the aggregator — every realized PnL and every round trip equal one engine's.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from collector.bus.aggregator import Aggregates
from collector.bus.records import PART_DECODER, PART_ENCODER, RECORDS_DECODER, Records
from collector.bus.router import Router
from collector.bus.worker import PartitionBooks
from collector.engine.engine import Engine
from collector.engine.partition import BookEngine
from collector.engine.positions import RoundTrip
from collector.model import Fill, Mark
from tests.engine.test_kernel_equals_reference import FIELDS, _same, random_stream

CAPITAL = {"A1": 2.5e6, "A2": 0.0, "A3": 3e5}


def with_duplicates(rng: random.Random, events: list[Fill | Mark]) -> list[Fill | Mark]:
    """Some fills again later (same account and fill id, maybe another price): intake drops them."""
    out = list(events)
    fills = [e for e in events if type(e) is Fill]
    for _ in range(len(fills) // 20):
        dup = rng.choice(fills)
        copy = Fill(**{name: getattr(dup, name) for name in Fill.__slots__})
        copy.price *= 1.5
        out.insert(rng.randrange(out.index(dup) + 1, len(out) + 1), copy)
    return out


def fresh(events: Sequence[Fill | Mark]) -> list[Fill | Mark]:
    """What the collector's intake books: the first fill of each (account, fill id), every mark."""
    seen: set[tuple[str, str]] = set()
    out: list[Fill | Mark] = []
    for event in events:
        if type(event) is Fill:
            if (event.account, event.fill_id) in seen:
                continue
            seen.add((event.account, event.fill_id))
        out.append(event)
    return out


def engine(basis: str, kind: type[Engine] = Engine) -> Engine:
    return kind(CAPITAL, 1e6, basis)  # type: ignore[arg-type]


def assert_rows_equal(got: Engine, want: Engine, levels: set[str]) -> None:
    keys = {key for key, series in want.series.items() if series.fills and key[0] in levels}
    assert {key for key, series in got.series.items() if series.fills and key[0] in levels} == keys
    assert got.clock_ns == want.clock_ns
    for key in sorted(keys):
        a, b = got.series[key], want.series[key]
        for name in FIELDS:
            assert _same(getattr(a, name), getattr(b, name)), (key, name, getattr(a, name), getattr(b, name))
        assert a.accounts == b.accounts
        row, ref = got.row(a), want.row(b)
        assert row.keys() == ref.keys(), key
        for name in row:
            assert _same(row[name], ref[name]), (key, name, row[name], ref[name])


def run_partitioned(
    events: list[Fill | Mark], partitions: int, basis: str, rng: random.Random, limit: int
) -> tuple[list[PartitionBooks], Aggregates, dict[tuple[str, str], float], list[RoundTrip], list[RoundTrip]]:
    router = Router(partitions, limit)
    workers = [PartitionBooks(p, engine(basis, BookEngine)) for p in range(partitions)]
    aggregator = Aggregates(partitions, engine(basis))
    inbox: list[list[bytes]] = [[] for _ in range(partitions)]
    realized: dict[tuple[str, str], float] = {}
    book_trips: list[tuple[int, RoundTrip]] = []
    agg_trips: list[RoundTrip] = []
    outbox: list[list[bytes]] = [[] for _ in range(partitions)]  # per partition in order, as records.<p>
    i = 0
    while i < len(events) or any(inbox) or any(outbox):
        if i < len(events) and rng.random() < 0.5:
            chunk = events[i : i + rng.choice([1, 3, 40, 300])]
            i += len(chunk)
            for message in router.route(chunk):
                inbox[message.partition].append(message.payload)
                assert len(message.payload) <= limit or message.last == PART_DECODER.decode(message.payload).first
        busy = [p for p in range(partitions) if inbox[p]]
        if busy and rng.random() < 0.7:
            p = rng.choice(busy)
            payload = inbox[p].pop(0)
            part = PART_DECODER.decode(payload)
            booked = workers[p].on_part(part)
            assert booked is not None
            if rng.random() < 0.1:  # redelivered: nothing booked twice
                assert workers[p].on_part(PART_DECODER.decode(payload)) is None
            for fill, pnl in booked.fills:
                realized[(fill.account, fill.fill_id)] = pnl
            seqs = booked.records.seq
            book_trips += [(seqs[row], trip) for row, trip in zip(booked.records.trips.row, booked.trips, strict=True)]
            outbox[p].append(PART_ENCODER.encode(booked.records))
        ready = [p for p in range(partitions) if outbox[p]]
        if ready and (rng.random() < 0.5 or (not any(inbox) and i >= len(events))):
            deliver(aggregator, RECORDS_DECODER.decode(outbox[rng.choice(ready)].pop(0)), rng)
            if rng.random() < 0.5:
                agg_trips += aggregator.apply().trips
    agg_trips += aggregator.apply().trips
    return workers, aggregator, realized, [t for _, t in sorted(book_trips, key=lambda x: x[0])], agg_trips


def deliver(aggregator: Aggregates, records: Records, rng: random.Random) -> None:
    aggregator.add(records)
    if rng.random() < 0.1:
        aggregator.add(records)  # a redelivery is skipped


@pytest.mark.parametrize("seed", range(6))
def test_partitions_equal_one_engine(seed: int) -> None:
    rng = random.Random(seed)
    stream = random_stream(rng, rng.choice([400, 1500]), books=rng.choice([3, 5, 7]), symbols=rng.choice([2, 5]))
    events = fresh(with_duplicates(rng, stream))
    basis = "calendar" if seed % 2 else "trading"
    ref = engine(basis)
    result = ref.on_events(events)
    want_realized = {
        (e.account, e.fill_id): pnl for e, pnl in zip(events, result.realized, strict=True) if type(e) is Fill
    }
    want_trips = [result.trips[i] for i in sorted(result.trips)]
    for partitions in (1, 2, 3, 4):
        limit = rng.choice([1_000_000, 3_000])
        workers, aggregator, realized, book_trips, agg_trips = run_partitioned(events, partitions, basis, rng, limit)
        assert aggregator.applied == len(events) - 1
        for worker in workers:
            assert worker.watermark == len(events) - 1
        assert_rows_equal(aggregator.engine, ref, {"strategy", "account", "portfolio"})
        books = {key for worker in workers for key, s in worker.engine.series.items() if s.fills and key[0] == "book"}
        assert books == {key for key, s in ref.series.items() if s.fills and key[0] == "book"}
        for worker in workers:
            for key, series in worker.engine.series.items():
                if key[0] == "book" and series.fills:
                    assert_series_equal(worker.engine, ref, key)
        assert realized.keys() == want_realized.keys()
        assert all(_same(realized[k], want_realized[k]) for k in realized)
        assert book_trips == want_trips
        assert agg_trips == want_trips


def assert_series_equal(got: Engine, want: Engine, key: tuple[str, str, str]) -> None:
    a, b = got.series[key], want.series[key]
    row, ref = got.row(a), want.row(b)
    assert row.keys() == ref.keys(), key
    for name in row:
        assert _same(row[name], ref[name]), (key, name, row[name], ref[name])
    for name in FIELDS:
        assert _same(getattr(a, name), getattr(b, name)), (key, name)
