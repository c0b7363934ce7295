"""The in-process event queue of the embedded mode (same interface as the Redis Stream)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import OrderedDict
from collections.abc import Sequence

from entitlements_sidecar.domain.events import QueuedEvent, SyncEvent


class MemoryQueue:
    def __init__(self, dedupe_seconds: float = 86_400, wait_seconds: float = 0.5) -> None:
        self._items: OrderedDict[str, SyncEvent] = OrderedDict()  # unacknowledged, oldest first
        self._delivered: set[str] = set()
        self._seen: dict[str, float] = {}
        self._dedupe_seconds = dedupe_seconds
        self._wait_seconds = wait_seconds
        self._ids = itertools.count(1)
        self._arrived = asyncio.Event()

    async def start(self) -> None:
        return None

    async def publish(self, event: SyncEvent, unique_key: str) -> bool:
        now = time.monotonic()
        if self._seen.get(unique_key, -1.0) > now:
            return False
        self._seen[unique_key] = now + self._dedupe_seconds
        if len(self._seen) > 100_000:  # forget expired keys now and then
            self._seen = {k: t for k, t in self._seen.items() if t > now}
        self._items[str(next(self._ids))] = event
        self._arrived.set()
        return True

    async def read(self, count: int) -> list[QueuedEvent]:
        fresh = [(i, e) for i, e in self._items.items() if i not in self._delivered]
        if not fresh:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), self._wait_seconds)
            except TimeoutError:
                return []
            fresh = [(i, e) for i, e in self._items.items() if i not in self._delivered]
        batch = fresh[:count]
        self._delivered.update(i for i, _ in batch)
        return [QueuedEvent(i, e) for i, e in batch]

    async def ack(self, ids: Sequence[str]) -> None:
        for entry_id in ids:
            self._items.pop(entry_id, None)
            self._delivered.discard(entry_id)

    async def depth(self) -> int:
        return len(self._items)
