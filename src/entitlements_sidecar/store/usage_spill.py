"""Uses counted in this sidecar while the shared counters could not be reached (meters that fail open),
added to them once they answer again.

Each use is replayed with its own transaction id and event, so a replay that reached Redis before an error
counts nothing twice, and the event joins the shared outbox then. The replay takes no limit: those uses were
allowed already (the price of failing open, bounded by how long Redis was away). They live in this process
until replayed; a sidecar that dies meanwhile loses them (Lago's count heals the counter only for uses that
reached Lago some other way). At most `max_entries` wait: past that, the meter fails closed.
"""

from __future__ import annotations

import asyncio
import logging

from entitlements_sidecar.domain.errors import StoreUnavailableError
from entitlements_sidecar.domain.usage import Counted, Recorded, UsageCounter, UsageEvent, UsageKey
from entitlements_sidecar.store.usage_memory import MemoryUsageCounter

log = logging.getLogger(__name__)


class UsageSpill:
    def __init__(self, shared: UsageCounter, max_entries: int = 100_000, retry_seconds: float = 1.0) -> None:
        self._shared = shared
        self._local = MemoryUsageCounter()
        self._pending: list[tuple[UsageKey, int, str, UsageEvent | None]] = []
        self._max_entries = max_entries
        self._retry = retry_seconds
        self.replayed = 0

    def __len__(self) -> int:
        return len(self._pending)

    async def read(self, key: UsageKey) -> Counted | None:
        return await self._local.read(key)

    async def record(self, key: UsageKey, value: int, transaction_id: str, event: UsageEvent | None) -> Recorded:
        if len(self._pending) >= self._max_entries:
            raise StoreUnavailableError(f"{self._max_entries} uses already wait for the shared counters")
        result = await self._local.record(key, value, transaction_id)
        if result.recorded:
            self._pending.append((key, value, transaction_id, event))
        return result

    async def replay(self) -> int:
        """Add what waits to the shared counters, oldest first; stops at the first failure."""
        done = 0
        while self._pending:
            key, value, transaction_id, event = self._pending[0]
            try:
                await self._shared.record(key, value, transaction_id, event=event)
            except StoreUnavailableError:
                break
            self._pending.pop(0)
            done += 1
        if done:
            self.replayed += done
            log.info("uses counted during a Redis outage added to the shared counters", extra={"uses": done})
        if not self._pending:
            self._local = MemoryUsageCounter()  # the next outage counts from its own start
        return done

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._retry)
            if self._pending:
                await self.replay()
