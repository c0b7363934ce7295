"""The usage outbox in process memory (Lago mode on the memory store: one process counts and forwards,
and nothing outlives it, the counters included)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from entitlements_sidecar.domain.usage import UsageEvent
from entitlements_sidecar.domain.usage_outbox import OutboxEntry


class MemoryUsageOutbox:
    def __init__(self) -> None:
        self._entries: dict[str, OutboxEntry] = {}  # in the order they were added
        self._handed: set[str] = set()  # read and not yet acknowledged
        self._ids = itertools.count(1)
        self.refused: list[tuple[UsageEvent, str]] = []

    async def start(self) -> None:
        return None

    def add(self, event: UsageEvent) -> None:
        key = str(next(self._ids))
        self._entries[key] = OutboxEntry(key, event)

    async def read(self, count: int) -> list[OutboxEntry]:
        batch = list(itertools.islice((e for k, e in self._entries.items() if k not in self._handed), count))
        self._handed.update(entry.id for entry in batch)
        return batch

    async def ack(self, ids: Sequence[str]) -> None:
        for key in ids:
            self._entries.pop(key, None)
            self._handed.discard(key)

    async def reject(self, entries: Sequence[OutboxEntry], reasons: Sequence[str]) -> None:
        self.refused += [(entry.event, reason) for entry, reason in zip(entries, reasons, strict=True)]
        await self.ack([entry.id for entry in entries])

    async def depth(self) -> int:
        return len(self._entries)
