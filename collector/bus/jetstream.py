"""The JetStream backend of `Bus` (nats-py): one replicated stream, a KV bucket of leases, a KV bucket of
checkpoint pointers and an object store of checkpoint bodies.

- Subjects: logical "fills.3" is "<stream>.fills.3" on the wire; the stream holds "<stream>.>".
- Publish: `Nats-Msg-Id` dedupe (the broker answers a duplicate with the first copy's sequence), so a
  retry after a lost ack stores nothing twice.
- Read: an ephemeral pull consumer (no acks, R1, in memory) started by sequence; when it stops answering
  (its server died, a leader moved) a new one starts after the last message yielded, and a gap in the
  consumer's own sequence (the server reset it) does the same: order and position stay the reader's.
- Lease: a KV entry `owner` with a per-message TTL (server clock: no client skew), created only when
  absent, renewed by compare-and-set on its revision. The fencing token is the revision at acquisition.
- Checkpoint: a KV entry `_HEADER(token, kind) + body`, written by compare-and-set on its revision and
  refused when it carries a later token; bodies above the KV value limit go to the object store and the
  entry holds the object's name (the CAS-guarded pointer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import struct
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TypeVar

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from collector.bus.base import Bus, BusError, Lease, LeaseHeld, LeaseLost, Message
from collector.config import JetStreamBusConfig

log = logging.getLogger(__name__)
T = TypeVar("T")

# Errors after which the same request may succeed: no quorum yet, an election, a reconnect.
_TRANSIENT: tuple[type[BaseException], ...] = (
    TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.ServerError,
)
_WRONG_LAST = (10071, 10164)  # JetStream err_codes of a failed expected-last-subject-sequence check
_SUBJECT = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_FILTER = re.compile(r"^([A-Za-z0-9_-]+|\*)(\.([A-Za-z0-9_-]+|\*))*(\.>)?$")
_HEADER = struct.Struct(">4sQB")  # magic, fencing token, body kind
_MAGIC = b"SMC1"
_INLINE, _OBJECT = 0, 1
_MSG_ID = api.Header.MSG_ID.value
_EXPECTED_LAST = api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value
_TTL = api.Header.MSG_TTL.value  # per-message TTL (nats-server 2.11+)
_SERVER = (2, 11)  # oldest nats-server with per-message TTL (Nats-TTL), which the leases expire by
_HEADER_ROOM = 1024  # headers (msg id, expected sequence, TTL) beside a payload
_ATTEMPT = 2.0  # seconds one request waits before it is retried
_FETCH = 256  # most messages per pull request
_FETCH_BYTES = 8 << 20  # bytes per pull request, about: batches of ~1 MB parts stay small in memory
_IDLE = 1.0  # seconds a pull waits for new messages before the consumer is checked


class _Conflict(Exception):
    """A compare-and-set lost: the entry's revision moved."""


class _Gap(Exception):
    """The consumer's sequence jumped: messages were skipped, the reader restarts after its position."""


# Errors after which a reader starts a new consumer after its position: a dead server, an election, a gap.
_RESTART: tuple[type[BaseException], ...] = (*_TRANSIENT, _Gap, nats.js.errors.NotFoundError)


class JetStreamLease(Lease):
    def __init__(self, bus: JetStreamBus, name: str, owner: str, ttl: float, revision: int, sent: float) -> None:
        self._bus = bus
        self.name = name
        self.owner = owner
        self.ttl = ttl
        self.token = revision
        self.revision = revision  # of the lease entry: moves on every renewal
        # monotonic time the last acknowledged write was sent: the server's TTL started later, so the lease
        # surely lasts until sent + ttl, and may be gone after it
        self.sent = sent
        # a save's lease check waits for a renewal in flight (a renewal task beside the saves), else it
        # would see the entry's new revision before `revision` has it
        self.lock = asyncio.Lock()

    async def renew(self) -> None:
        """Retries until the lease would have expired; any failure is `LeaseLost` (it may be someone's now)."""
        async with self.lock:
            sent = time.monotonic()
            try:
                self.revision = await self._bus._cas(
                    self._bus._leases_kv,
                    self.name,
                    self.owner.encode(),
                    self.revision,
                    self.ttl,
                    timeout=max(0.0, self.sent + self.ttl - sent),
                )
            except _Conflict:
                raise LeaseLost(f"lease {self.name} of {self.owner} expired or was taken over") from None
            except BusError as exc:
                raise LeaseLost(f"lease {self.name} of {self.owner}: not renewed before it expired ({exc})") from None
            self.sent = sent

    async def release(self) -> None:
        async with self.lock:
            with contextlib.suppress(_Conflict):  # already expired or taken: nothing of ours to give up
                await self._bus._delete(self._bus._leases_kv, self.name, self.revision)


class JetStreamBus(Bus):
    """Use `await JetStreamBus.connect(config)`; one instance per process (one connection)."""

    def __init__(self, config: JetStreamBusConfig, nc: Client) -> None:
        self._config = config
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream(timeout=_ATTEMPT)
        self._stream = config.stream
        self._leases_kv = f"{config.stream}_leases"
        self._checkpoints_kv = f"{config.stream}_checkpoints"
        self._kv: dict[str, KeyValue] = {}
        self._objects: ObjectStore | None = None
        self._closing = False

    @classmethod
    async def connect(cls, config: JetStreamBusConfig) -> JetStreamBus:
        token = os.environ.get(config.token_env) or None

        nc = Client()

        async def error(exc: Exception) -> None:
            log.warning("NATS connection: %s", exc)

        async def disconnected() -> None:
            if not (nc.is_closed or nc.is_draining):  # not our own close()
                log.warning("NATS: disconnected; reconnecting")

        if config.creds_file is not None and not config.creds_file.is_file():
            raise BusError(f"bus.creds_file: {config.creds_file} is not a file")
        connecting = nc.connect(
            servers=config.urls,
            token=token,
            user_credentials=str(config.creds_file) if config.creds_file else None,
            connect_timeout=round(_ATTEMPT),
            reconnect_time_wait=0.2,  # type: ignore[arg-type]  # annotated int, used as seconds by asyncio.sleep
            max_reconnect_attempts=-1,  # servers come back; the caller's timeouts bound each request
            error_cb=error,
            disconnected_cb=disconnected,
        )
        where = ", ".join(config.urls)
        try:
            # the first connect retries forever too (max_reconnect_attempts=-1): bound it here
            await asyncio.wait_for(connecting, config.publish_timeout)
        except TimeoutError:
            raise BusError(f"no NATS server of {where} answered within {config.publish_timeout:g} s") from None
        except (OSError, nats.errors.Error) as exc:
            # the exception names hosts and ports at most, never the token
            raise BusError(f"cannot connect to NATS at {where}: {exc}") from None
        version = nc.connected_server_version
        if (version.major, version.minor) < _SERVER:
            await nc.close()
            found, needed = f"{version.major}.{version.minor}.{version.patch}", ".".join(map(str, _SERVER))
            raise BusError(f"nats-server {found} at {where}: the bus needs {needed} or later (leases expire by TTL)")
        return cls(config, nc)

    @property
    def max_payload(self) -> int:
        return self._nc.max_payload - _HEADER_ROOM

    # -- helpers -------------------------------------------------------------------------------------------

    async def _retry(self, what: str, request: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        """`request()` until it answers or `timeout` (default: publish_timeout) passes; backoff 50 ms → 1 s."""
        deadline = time.monotonic() + (self._config.publish_timeout if timeout is None else timeout)
        delay = 0.05
        while True:
            try:
                return await request()
            except _TRANSIENT as exc:
                if time.monotonic() + delay > deadline:
                    raise BusError(f"{what}: no answer from NATS ({type(exc).__name__})") from None
                await asyncio.sleep(delay)
                delay = min(2 * delay, 1.0)
            except nats.js.errors.APIError as exc:
                if exc.err_code in _WRONG_LAST:
                    raise _Conflict from None
                raise BusError(f"{what}: {exc.description or exc}") from None
            except nats.errors.Error as exc:  # a closed connection, a bad subject, ...: callers see BusError only
                raise BusError(f"{what}: {exc}") from None

    def _subject(self, logical: str, pattern: re.Pattern[str] = _SUBJECT) -> str:
        if not pattern.match(logical):
            raise BusError(f"bad subject {logical!r}: dot-separated tokens of letters, digits, _ and -")
        return f"{self._stream}.{logical}"

    async def _bucket(self, name: str) -> KeyValue:
        if name not in self._kv:

            async def bind() -> KeyValue:
                try:
                    return await self._js.key_value(name)
                except nats.js.errors.BucketNotFoundError:
                    # direct=False: reads go to the leader, so a CAS starts from the latest revision
                    return await self._js.create_key_value(
                        bucket=name, history=1, replicas=self._config.replicas, direct=False
                    )

            self._kv[name] = await self._retry(f"bucket {name}", bind)
        return self._kv[name]

    async def _object_store(self) -> ObjectStore:
        if self._objects is None:
            name = f"{self._stream}_blobs"

            async def bind() -> ObjectStore:
                try:
                    return await self._js.object_store(name)
                except nats.js.errors.BucketNotFoundError:
                    return await self._js.create_object_store(name, replicas=self._config.replicas)

            self._objects = await self._retry(f"object store {name}", bind)
        return self._objects

    async def _get(self, bucket: str, key: str) -> tuple[int, bytes | None]:
        """(revision, value) of a KV entry; value None when absent or deleted (revision 0 if never written)."""
        kv = await self._bucket(bucket)

        async def get() -> tuple[int, bytes | None]:
            try:
                entry = await kv.get(key)
            except nats.js.errors.KeyNotFoundError as missing:
                deleted = missing.entry  # a delete marker: the next create must name its revision
                return (deleted.revision or 0) if deleted is not None else 0, None
            return entry.revision or 0, entry.value

        return await self._retry(f"get {bucket}/{key}", get)

    async def _cas(
        self, bucket: str, key: str, value: bytes, last: int, ttl: float | None = None, timeout: float | None = None
    ) -> int:
        """Write `key` iff its revision is `last` (0: absent); the new revision, else `_Conflict`.

        One message id for all attempts: when an attempt was applied but its ack lost, the retry is a
        duplicate and answers with that revision instead of failing the revision check.
        """
        headers = {_EXPECTED_LAST: str(last), _MSG_ID: uuid.uuid4().hex}
        if ttl is not None:
            headers[_TTL] = f"{round(ttl * 1000)}ms"
        subject = f"$KV.{bucket}.{key}"

        async def write() -> int:
            ack = await self._js.publish(subject, value, headers=dict(headers))
            return ack.seq

        await self._bucket(bucket)
        return await self._retry(f"write {bucket}/{key}", write, timeout)

    async def _delete(self, bucket: str, key: str, last: int) -> None:
        kv = await self._bucket(bucket)

        async def delete() -> None:
            await kv.delete(key, last=last)

        await self._retry(f"delete {bucket}/{key}", delete)

    # -- Bus -----------------------------------------------------------------------------------------------

    async def ensure_stream(self, partitions: int) -> None:
        config = api.StreamConfig(
            name=self._stream,
            subjects=[f"{self._stream}.>"],
            num_replicas=self._config.replicas,
            storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS,
            discard=api.DiscardPolicy.OLD,
            max_age=self._config.retention,
            duplicate_window=self._config.dedupe_window,
            metadata={"partitions": str(partitions)},
        )

        async def ensure() -> api.StreamInfo:
            try:
                return await self._js.stream_info(self._stream)
            except nats.js.errors.NotFoundError:
                return await self._js.add_stream(config)  # the same config twice (a race) is no error

        info = await self._retry(f"stream {self._stream}", ensure)
        existing = (info.config.metadata or {}).get("partitions")
        if existing != str(partitions):
            raise BusError(
                f"stream {self._stream} was made for {existing} partitions, bus.partitions is {partitions}: "
                "books would move between partitions (use a new stream name to repartition)"
            )
        await self._bucket(self._leases_kv)
        await self._bucket(self._checkpoints_kv)

    async def publish(self, subject: str, payload: bytes, msg_id: str) -> int:
        if len(payload) > self.max_payload:
            raise BusError(f"publish {subject}: {len(payload)} bytes, the limit is {self.max_payload}")
        wire = self._subject(subject)
        headers = {_MSG_ID: msg_id}

        async def publish() -> int:
            ack = await self._js.publish(wire, payload, stream=self._stream, headers=dict(headers))
            return ack.seq

        try:
            return await self._retry(f"publish {subject}", publish)
        except _Conflict:  # no expected-sequence header is sent: cannot happen
            raise BusError(f"publish {subject}: unexpected sequence conflict") from None

    async def read(self, subjects: str | Sequence[str], after: int) -> AsyncGenerator[Message, None]:
        names = [subjects] if isinstance(subjects, str) else list(subjects)
        filters = [self._subject(name, _FILTER) for name in names]
        prefix = len(self._stream) + 1
        position = after
        delay = 0.05
        largest = 0  # bytes of the largest message seen; none yet: 16 per pull
        while not self._closing:
            consumer = uuid.uuid4().hex
            try:
                sub = await self._consumer(consumer, filters, position + 1)
            except _TRANSIENT:
                await asyncio.sleep(delay)
                delay = min(2 * delay, 1.0)
                continue
            except nats.js.errors.APIError as exc:
                raise BusError(f"read {', '.join(names)}: {exc.description or exc}") from None
            except Exception:
                if self._closing:  # whatever nats-py raises on a closed connection: the read ends
                    return
                raise
            expected = 1  # the consumer's own sequence: a jump means the server reset it and skipped messages
            try:
                while True:
                    try:
                        size = max(1, min(_FETCH, _FETCH_BYTES // largest)) if largest else 16
                        batch: list[Msg] = await sub.fetch(size, timeout=_IDLE)
                    except TimeoutError:
                        await sub.consumer_info()  # nothing new, unless the consumer died: then this raises
                        continue
                    for msg in batch:
                        meta = msg.metadata
                        if meta.sequence.consumer != expected:
                            raise _Gap
                        expected += 1
                        position = meta.sequence.stream
                        largest = max(largest, len(msg.data))
                        delay = 0.05
                        yield Message(position, msg.subject[prefix:], msg.data, meta.num_pending)
            except _RESTART as exc:
                log.info("bus read %s: consumer restarts after sequence %d (%s)", names, position, type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(2 * delay, 1.0)
            except Exception:
                if self._closing:
                    return
                raise
            finally:
                await self._drop(sub, consumer)

    async def _consumer(self, name: str, filters: list[str], start: int) -> JetStreamContext.PullSubscription:
        config = api.ConsumerConfig(
            name=name,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=30.0,  # the server drops it when this reader vanished
            num_replicas=1,
            mem_storage=True,
        )
        if len(filters) == 1:
            config.filter_subject = filters[0]
        else:
            config.filter_subjects = filters
        await self._js.add_consumer(self._stream, config)
        return await self._js.pull_subscribe_bind(consumer=name, stream=self._stream)

    async def _drop(self, sub: JetStreamContext.PullSubscription, consumer: str) -> None:
        """Best effort: a dead server's consumer is dropped by its inactive_threshold instead."""
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        if not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._js.delete_consumer(self._stream, consumer), 0.5)

    async def lease(self, name: str, owner: str, ttl: float) -> Lease:
        self._subject(name)  # the same alphabet as KV keys
        last, value = await self._get(self._leases_kv, name)
        if value is not None:
            raise LeaseHeld(name, value.decode(errors="replace"))
        sent = time.monotonic()
        try:
            revision = await self._cas(self._leases_kv, name, owner.encode(), last, ttl)
        except _Conflict:  # taken between the read and the write
            _, value = await self._get(self._leases_kv, name)
            raise LeaseHeld(name, (value or b"?").decode(errors="replace")) from None
        return JetStreamLease(self, name, owner, ttl, revision, sent)

    async def _check(self, lease: Lease) -> JetStreamLease:
        if not isinstance(lease, JetStreamLease) or lease._bus is not self:
            raise BusError(f"lease {lease.name} is not one of this bus")
        async with lease.lock:
            revision, _ = await self._get(self._leases_kv, lease.name)
        if revision != lease.revision:
            raise LeaseLost(f"lease {lease.name} of {lease.owner} expired or was taken over")
        return lease

    async def save(self, name: str, data: bytes, lease: Lease) -> None:
        self._subject(name)
        held = await self._check(lease)
        limit = self.max_payload - _HEADER.size
        blob = f"{name}.{held.token}.{uuid.uuid4().hex}" if len(data) > limit else None
        if blob is not None:
            await self._put_object(blob, data)
        body = _HEADER.pack(_MAGIC, held.token, _INLINE if blob is None else _OBJECT) + (
            data if blob is None else blob.encode()
        )
        try:
            for _ in range(10):  # a conflict from a stale holder's write re-reads; ours wins unless fenced
                last, value = await self._get(self._checkpoints_kv, name)
                previous = _parse(name, value) if value is not None else None
                if previous is not None and previous[0] > held.token:
                    raise LeaseLost(f"checkpoint {name}: a later lease holder (token {previous[0]}) wrote it")
                try:
                    await self._cas(self._checkpoints_kv, name, body, last)
                except _Conflict:
                    continue
                if previous is not None and previous[1] == _OBJECT:
                    await self._remove_object(previous[2].decode())
                blob = None  # stored: keep it
                return
            raise BusError(f"checkpoint {name}: ten compare-and-set conflicts in a row")
        finally:
            if blob is not None:
                await self._remove_object(blob)

    async def _put_object(self, name: str, data: bytes) -> None:
        store = await self._object_store()

        # chunks as large as a message may be: 8× fewer than nats-py's 128 kB default (8 MB: get ~1.2× faster)
        meta = api.ObjectMeta(name=name, options=api.ObjectMetaOptions(max_chunk_size=self.max_payload))

        async def put() -> None:
            await store.put(name, data, meta=meta)

        await self._retry(f"object {name}", put)

    async def _get_object(self, name: str) -> bytes | None:
        """The object's bytes, None when it is gone."""
        store = await self._object_store()

        async def get() -> bytes | None:
            try:
                result = await store.get(name)
            except nats.js.errors.NotFoundError:
                return None
            return None if result.data is None else bytes(result.data)

        return await self._retry(f"object {name}", get)

    async def _remove_object(self, name: str) -> None:
        store = await self._object_store()
        with contextlib.suppress(nats.errors.Error):  # an orphan costs space, not correctness
            await store.delete(name)

    async def load(self, name: str) -> bytes | None:
        self._subject(name)
        for _ in range(10):
            _, value = await self._get(self._checkpoints_kv, name)
            if value is None:
                return None
            _, kind, body = _parse(name, value)
            if kind == _INLINE:
                return body
            data = await self._get_object(body.decode())
            if data is not None:
                return data
            # replaced (and deleted) by a newer save between the two reads: read the pointer again
        raise BusError(f"checkpoint {name}: its object store body keeps disappearing")

    async def close(self) -> None:
        self._closing = True
        with contextlib.suppress(nats.errors.Error):
            await self._nc.drain()


def _parse(name: str, value: bytes) -> tuple[int, int, bytes]:
    """(token, kind, body) of a checkpoint entry."""
    if len(value) < _HEADER.size:
        raise BusError(f"checkpoint {name}: {len(value)} bytes, not a stratmon checkpoint entry")
    magic, token, kind = _HEADER.unpack_from(value)
    if magic != _MAGIC or kind not in (_INLINE, _OBJECT):
        raise BusError(f"checkpoint {name}: not a stratmon checkpoint entry (magic {magic!r}, kind {kind})")
    return token, kind, value[_HEADER.size :]
