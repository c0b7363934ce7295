"""Sync events and the seams the generic syncer (`sync/`) runs over: the queue that carries events, the
handler that applies them, and the loader that makes the whole map equal to the source."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


class Target(enum.Enum):
    SUBSCRIPTION = "subscription"  # key: the subscription's external_id
    PLAN = "plan"  # key: the plan code
    FEATURE = "feature"  # key: the feature code
    USAGE = "usage"  # key: the subscription's external_id and a metric code, joined by a unit separator


_USAGE_SEPARATOR = "\x1f"  # ids hold no control characters (domain/ids.py)


def usage_key(subscription_id: str, metric_code: str) -> str:
    """The key of a Target.USAGE event: re-read this subscription's usage of this metric."""
    return f"{subscription_id}{_USAGE_SEPARATOR}{metric_code}"


def split_usage_key(key: str) -> tuple[str, str]:
    subscription_id, _, metric_code = key.partition(_USAGE_SEPARATOR)
    return subscription_id, metric_code


@dataclass(frozen=True, slots=True)
class SyncEvent:
    target: Target
    key: str
    webhook_type: str


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    id: str
    event: SyncEvent


class EventQueue(Protocol):
    async def start(self) -> None: ...

    async def publish(self, event: SyncEvent, unique_key: str) -> bool:
        """Queue durably unless `unique_key` was seen before (then False: a duplicate delivery)."""
        ...

    async def read(self, count: int) -> list[QueuedEvent]:
        """Up to `count` events: first ones a dead consumer left unacknowledged, then new ones.
        Waits briefly when there are none."""
        ...

    async def ack(self, ids: Sequence[str]) -> None: ...

    async def depth(self) -> int: ...


class EventHandler(Protocol):
    async def apply(self, events: Sequence[SyncEvent]) -> None:
        """Bring the store up to date for a batch. SourceUnavailableError or StoreUnavailableError: try
        the same batch again later; anything else: retrying would not help."""
        ...


Progress = Callable[[int, int], None]  # (subscriptions done, of how many)


@dataclass(frozen=True, slots=True)
class SyncReport:
    subscriptions: int
    repaired: int
    removed: int
    seconds: float
    recorded: bool = True  # False: the store lost the map meanwhile, so the load is not complete


class MapLoader(Protocol):
    async def run(self, progress: Progress | None = None) -> SyncReport:
        """Load every subscription the source holds and remove what it no longer holds."""
        ...


@dataclass(frozen=True, slots=True)
class Delivery:
    """One verified webhook: its type, the event it asks for (None: it changes nothing we keep), and the
    sender's delivery key, which makes a redelivery a duplicate."""

    kind: str
    event: SyncEvent | None
    unique_key: str


class WebhookDecoder(Protocol):
    async def decode(self, headers: Mapping[str, str], body: bytes) -> Delivery:
        """UnauthenticatedError (bad signature), InvalidArgumentError (malformed), SourceUnavailableError
        or SourceRejectedError (the signature cannot be checked now)."""
        ...
