"""The JetStream backend on the real 3-node cluster: order, dedupe, reads through a leader's SIGKILL,
lease exclusion / takeover / fencing, and checkpoints above the KV value limit."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import pytest

from collector.bus.base import Bus, BusError, Lease, LeaseHeld, LeaseLost, Message
from collector.bus.jetstream import JetStreamBus
from collector.config import JetStreamBusConfig
from tests.bus.natscluster import NatsCluster

T = TypeVar("T")
_streams = itertools.count()
BOUND = 60.0  # seconds a test may wait for the cluster before it fails instead of hanging


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(BOUND):
            return await coroutine

    return asyncio.run(bounded())


def config(cluster: NatsCluster, **overrides: Any) -> JetStreamBusConfig:
    """A stream of the test's own (streams share the session's cluster)."""
    return JetStreamBusConfig(kind="jetstream", urls=cluster.urls, stream=f"T{next(_streams)}", **overrides)


async def take(messages: AsyncIterator[Message], count: int) -> list[Message]:
    return [await anext(messages) for _ in range(count)]


def test_publish_is_read_in_stream_order_and_a_repeated_id_is_stored_once(nats_cluster: NatsCluster) -> None:
    async def scenario() -> None:
        bus = await JetStreamBus.connect(config(nats_cluster))
        await bus.ensure_stream(partitions=2)
        await bus.ensure_stream(partitions=2)  # idempotent
        seqs = [await bus.publish(f"fills.{i % 2}", b"m%d" % i, f"b{i}") for i in range(20)]
        assert seqs == sorted(seqs) and len(set(seqs)) == 20
        assert await bus.publish("fills.1", b"m3 again", "b3") == seqs[3]  # dedupe: the first copy's sequence
        one = bus.read("fills.1", after=0)
        got = await take(one, 10)
        assert [(m.seq, m.subject, m.data) for m in got] == [(seqs[i], "fills.1", b"m%d" % i) for i in range(1, 20, 2)]
        assert got[-1].pending == 0
        both = bus.read(["fills.0", "fills.1"], after=seqs[9])
        assert [m.data for m in await take(both, 10)] == [b"m%d" % i for i in range(10, 20)]
        every = bus.read("fills.*", after=0)
        assert [m.subject for m in await take(every, 3)] == ["fills.0", "fills.1", "fills.0"]
        await every.aclose()
        late = await bus.publish("fills.1", b"late", "b20")
        assert (await anext(one)).seq == late  # a live read sees new messages
        await one.aclose()
        await both.aclose()
        await bus.close()

    run(scenario())


def test_a_stream_made_for_other_partitions_is_refused(nats_cluster: NatsCluster) -> None:
    async def scenario() -> None:
        bus = await JetStreamBus.connect(config(nats_cluster))
        await bus.ensure_stream(partitions=2)
        with pytest.raises(BusError, match=r"made for 2 partitions, bus\.partitions is 3"):
            await bus.ensure_stream(partitions=3)
        await bus.close()

    run(scenario())


def test_a_read_resumes_in_order_after_its_server_and_the_stream_leader_are_killed(nats_cluster: NatsCluster) -> None:
    settings = config(nats_cluster)

    async def scenario() -> None:
        bus = await JetStreamBus.connect(settings)
        await bus.ensure_stream(partitions=1)
        for i in range(20):
            await bus.publish("fills.0", b"%d" % i, f"a{i}")
        host = nats_cluster.leader(settings.stream)
        # the reader knows one URL only: it finds the others from the cluster when that server dies
        reader = await JetStreamBus.connect(settings.model_copy(update={"urls": [nats_cluster.urls[host]]}))
        messages = reader.read("fills.0", after=0)
        got = await take(messages, 10)
        # the reader's consumer dies with its server: a new one starts after the last message yielded
        await asyncio.to_thread(nats_cluster.kill, nats_cluster.consumer_host(settings.stream))
        got += await take(messages, 10)
        await asyncio.to_thread(nats_cluster.heal)
        leader = nats_cluster.leader(settings.stream)
        await asyncio.to_thread(nats_cluster.kill, leader)
        assert leader not in nats_cluster.alive()
        for i in range(20, 40):  # retried through the election
            await bus.publish("fills.0", b"%d" % i, f"a{i}")
        got += await take(messages, 20)
        assert [m.data for m in got] == [b"%d" % i for i in range(40)]
        assert [m.seq for m in got] == list(range(1, 41))
        await reader.close()
        with pytest.raises(StopAsyncIteration):  # a closed bus ends its reads
            await anext(messages)
        await bus.close()

    run(scenario())


async def _two(cluster: NatsCluster) -> tuple[Bus, Bus]:
    settings = config(cluster)
    a, b = await JetStreamBus.connect(settings), await JetStreamBus.connect(settings)
    await a.ensure_stream(partitions=1)
    return a, b


def test_a_lease_excludes_then_expires_and_fences_the_stale_holder(
    nats_cluster: NatsCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        a, b = await _two(nats_cluster)
        held = await a.lease("part.0", "worker-a", ttl=1.0)
        await a.save("part.0", b"state of a", held)
        with pytest.raises(LeaseHeld) as info:
            await b.lease("part.0", "worker-b", ttl=1.0)
        assert info.value.owner == "worker-a"
        for _ in range(3):  # renewals beside saves (a renewal task): a save waits for the renewal in flight
            await asyncio.gather(held.renew(), a.save("part.0", b"state of a", held))
        while True:  # a stops renewing (paused, partitioned): its lease expires on the server's clock
            try:
                taken = await b.lease("part.0", "worker-b", ttl=1.0)
                break
            except LeaseHeld:
                await asyncio.sleep(0.1)
        assert taken.token > held.token
        assert await b.load("part.0") == b"state of a"
        await b.save("part.0", b"state of b", taken)
        with pytest.raises(LeaseLost):
            await held.renew()
        with pytest.raises(LeaseLost):
            await a.save("part.0", b"stale", held)
        assert await a.load("part.0") == b"state of b"

        async def paused(lease: Lease) -> Lease:  # a passed its lease check just before b took over
            return lease

        monkeypatch.setattr(a, "_check", paused)
        with pytest.raises(LeaseLost, match="later lease holder"):  # the token in b's checkpoint fences a
            await a.save("part.0", b"stale", held)
        assert await a.load("part.0") == b"state of b"
        await taken.renew()
        await taken.release()
        again = await a.lease("part.0", "worker-a", ttl=1.0)  # released: free at once
        assert again.token > taken.token
        await a.close()
        with pytest.raises(LeaseLost):  # no bus, no renewal: its holder must stop
            await again.renew()
        await b.close()

    run(scenario())


def test_checkpoints_above_the_kv_value_limit_round_trip(nats_cluster: NatsCluster) -> None:
    async def scenario() -> None:
        a, b = await _two(nats_cluster)
        held = await a.lease("part.1", "worker-a", ttl=5.0)
        assert await a.load("part.1") is None
        big = os.urandom(3 * a.max_payload + 17)
        await a.save("part.1", big, held)
        assert await b.load("part.1") == big
        bigger = os.urandom(4 * a.max_payload)
        await a.save("part.1", bigger, held)  # replaces the pointer, then drops the old object
        assert await b.load("part.1") == bigger
        await a.save("part.1", b"small", held)
        assert await b.load("part.1") == b"small"
        await held.release()
        await a.close()
        await b.close()

    run(scenario())
