"""Usage counters in process memory (the embedded mode, or Lago mode on the memory store: one process holds
every counter). With an outbox, a recorded event is queued in the same step that counts it."""

from __future__ import annotations

import time

from entitlements_sidecar.domain.clock import now_ms
from entitlements_sidecar.domain.usage import (
    TRANSACTION_WINDOW_SECONDS,
    Counted,
    Recorded,
    UsageEvent,
    UsageKey,
)
from entitlements_sidecar.store.usage_outbox_memory import MemoryUsageOutbox

_FORGET_MS = 40 * 86_400_000  # as long as a Redis counter lives


class MemoryUsageCounter:
    def __init__(self, outbox: MemoryUsageOutbox | None = None) -> None:
        self._outbox = outbox
        self._counters: dict[UsageKey, Counted] = {}
        self._transactions: dict[tuple[str, str], float] = {}  # (subscription, transaction id) -> expiry
        self._active: dict[UsageKey, int] = {}  # -> when last recorded to (ms)

    async def read(self, key: UsageKey) -> Counted | None:
        return self._counters.get(key)

    async def record(
        self,
        key: UsageKey,
        value: int,
        transaction_id: str,
        limit: int | None = None,
        event: UsageEvent | None = None,
        seeded_only: bool = False,
    ) -> Recorded:
        # No await between the read and the write: one check-and-add at a time, as the Redis script is.
        now = time.monotonic()
        counted = self._counters.get(key)
        used, reconciled = (counted.used, counted.reconciled_ms) if counted else (0, None)
        seen = self._transactions.get((key.subscription_id, transaction_id))
        if seen is not None and seen > now:
            return Recorded(used, recorded=False, duplicate=True, reconciled_ms=reconciled)
        if counted is None and seeded_only:
            return Recorded(0, recorded=False, duplicate=False, unseeded=True)
        if limit is not None and used + value > limit:
            return Recorded(used, recorded=False, duplicate=False, reconciled_ms=reconciled)
        used += value
        self._counters[key] = Counted(used, reconciled)
        self._active[key] = now_ms()
        if event is not None and self._outbox is not None:
            self._outbox.add(event)
        self._transactions[(key.subscription_id, transaction_id)] = now + TRANSACTION_WINDOW_SECONDS
        if len(self._transactions) > 1_000_000:  # forget expired ids now and then
            self._transactions = {k: t for k, t in self._transactions.items() if t > now}
        return Recorded(used, recorded=True, duplicate=False, reconciled_ms=reconciled)

    async def raise_to(self, key: UsageKey, units: int, at_ms: int | None) -> tuple[int | None, int]:
        counted = self._counters.get(key)
        before = counted.used if counted else None
        after = max(units, before if before is not None else units)
        reconciled = at_ms if at_ms is not None else (counted.reconciled_ms if counted else None)
        self._counters[key] = Counted(after, reconciled)
        return before, after

    async def active(self, since_ms: int) -> list[UsageKey]:
        forgotten = now_ms() - _FORGET_MS
        self._active = {key: at for key, at in self._active.items() if at >= forgotten}
        return [key for key, at in self._active.items() if at >= since_ms]
