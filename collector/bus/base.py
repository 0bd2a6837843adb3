"""The bus interface: an ordered, replicated log with per-subject reads, leases and checkpoints.

No broker import here: the router, workers and aggregator code against `Bus`, and a backend
(jetstream.py; a Kafka one would be another module) is picked by collector/bus/registry.py.

Subjects are logical ("fills.3", "records.0"); a backend maps them onto its own names. Sequences are
the log's: every message of the one stream gets the next number, so a reader's position is a single
int it keeps in its own checkpoint (not broker-side acks), and `read(subject, after=position)` resumes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Sequence
from typing import NamedTuple


class BusError(Exception):
    """The bus could not do what was asked within its bounds (no ack, no quorum, bad stream)."""


class LeaseHeld(BusError):
    """Someone else holds the lease."""

    def __init__(self, name: str, owner: str) -> None:
        super().__init__(f"lease {name} is held by {owner}")
        self.name = name
        self.owner = owner


class LeaseLost(BusError):
    """The lease expired or was taken over (fenced): the holder must stop writing and exit."""


class Message(NamedTuple):
    seq: int  # the stream sequence: increases over the whole stream, gaps between one subject's messages
    subject: str  # logical subject, e.g. "fills.3"
    data: bytes
    pending: int  # messages on the read's subjects after this one when it was delivered: the reader's lag


class Lease(ABC):
    """Exclusive ownership of `name` until `ttl` seconds pass without a renewal.

    `token` is the fencing token: it increases on every acquisition (never on a renewal), and a
    checkpoint saved under a lease keeps it, so a holder whose lease was taken over cannot overwrite
    the new holder's checkpoint (`Bus.save` raises `LeaseLost`).
    """

    name: str
    owner: str
    token: int
    ttl: float

    @abstractmethod
    async def renew(self) -> None:
        """Extend the lease by ttl; `LeaseLost` when it expired, someone else holds it now, or the bus
        could not be reached before it would have expired (renew every ttl/3 or so)."""

    @abstractmethod
    async def release(self) -> None:
        """Give the lease up at once (a standby can take it without waiting for the ttl)."""


class Bus(ABC):
    @property
    @abstractmethod
    def max_payload(self) -> int:
        """Largest `publish` payload in bytes: producers split bigger batches."""

    @abstractmethod
    async def ensure_stream(self, partitions: int) -> None:
        """Create the stream (and lease/checkpoint stores) if missing; idempotent.

        Raises `BusError` when the stream exists with another partition count: books would land in
        other partitions than their checkpoints say.
        """

    @abstractmethod
    async def publish(self, subject: str, payload: bytes, msg_id: str) -> int:
        """Append `payload` to `subject`; returns its stream sequence once the broker acknowledged it
        (replicated: acknowledged = durable).

        Retries with the same `msg_id` on timeouts and leader changes (the broker stores one message
        per id within its dedupe window, and answers a duplicate with the first one's sequence), then
        raises `BusError`. Keep one publish in flight per subject, so retries cannot reorder.
        """

    @abstractmethod
    def read(self, subjects: str | Sequence[str], after: int) -> AsyncGenerator[Message, None]:
        """Every message on `subjects` with sequence > `after`, in stream order, then new ones as they
        come; it ends when the bus is closed (close it earlier with `aclose()` or by leaving an `async for`).

        Survives broker restarts and leader changes: it resumes after the last message it yielded.
        """

    @abstractmethod
    async def lease(self, name: str, owner: str, ttl: float) -> Lease:
        """Take the lease `name` if it is free or expired; `LeaseHeld` otherwise."""

    @abstractmethod
    async def save(self, name: str, data: bytes, lease: Lease) -> None:
        """Store checkpoint `name` (any size) while `lease` is held; `LeaseLost` when it is not, or a
        later holder's checkpoint is there (compare-and-set, so a stale holder never overwrites it)."""

    @abstractmethod
    async def load(self, name: str) -> bytes | None:
        """The last saved checkpoint `name`, or None."""

    @abstractmethod
    async def close(self) -> None:
        """Flush and disconnect; pending reads end."""
