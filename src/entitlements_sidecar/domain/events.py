"""Sync events: what a webhook asks the syncer to re-read, and the queue seam that carries them."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class Target(enum.Enum):
    SUBSCRIPTION = "subscription"  # key: the subscription's external_id
    PLAN = "plan"  # key: the plan code
    FEATURE = "feature"  # key: the feature code


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
