"""The usage outbox: every recorded use waits there until the billing source has it.

The counters queue an event in the same atomic step that counts it (store/usage_redis.py), so nothing
counted can be lost between the count and the forwarding; the forwarder (sync/usage_forwarder.py) reads
entries, sends them through an EventSink and acknowledges only what the sink took.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from entitlements_sidecar.domain.usage import UsageEvent


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: str  # opaque to everyone but the outbox
    event: UsageEvent


class UsageOutbox(Protocol):
    async def start(self) -> None: ...

    async def read(self, count: int) -> list[OutboxEntry]:
        """Up to `count` entries not yet acknowledged: first those a stopped forwarder left, then new ones.
        An empty list when there are none (it does not wait)."""
        ...

    async def ack(self, ids: Sequence[str]) -> None:
        """The sink has these: forget them."""
        ...

    async def reject(self, entries: Sequence[OutboxEntry], reasons: Sequence[str]) -> None:
        """The sink refused these for good: keep them aside with the reason (never silently dropped)."""
        ...

    async def depth(self) -> int: ...


@dataclass(frozen=True, slots=True)
class SendResult:
    """What a sink did with a batch, by index: delivered (it has them, now or before), refused for good
    (with the reason); any other index was not taken and is sent again."""

    delivered: Sequence[int]
    refused: Mapping[int, str] = field(default_factory=dict)


class EventSink(Protocol):
    async def send(self, events: Sequence[UsageEvent]) -> SendResult:
        """Deliver a batch (at most `max_batch`). SourceUnavailableError: nothing was taken, try again
        later; SourceRejectedError: the sink refuses us (a bad key), try again once fixed."""
        ...

    @property
    def max_batch(self) -> int: ...
