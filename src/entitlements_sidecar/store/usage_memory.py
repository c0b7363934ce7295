"""Usage counters in process memory (the embedded mode, or Lago mode on the memory store: one process holds
every counter). With an outbox, a recorded event is queued in the same step that counts it."""

from __future__ import annotations

import time

from entitlements_sidecar.domain.usage import TRANSACTION_WINDOW_SECONDS, Recorded, UsageEvent, UsageKey
from entitlements_sidecar.store.usage_outbox_memory import MemoryUsageOutbox


class MemoryUsageCounter:
    def __init__(self, outbox: MemoryUsageOutbox | None = None) -> None:
        self._outbox = outbox
        self._counters: dict[UsageKey, int] = {}
        self._transactions: dict[tuple[str, str], float] = {}  # (subscription, transaction id) -> expiry

    async def used(self, key: UsageKey) -> int:
        return self._counters.get(key, 0)

    async def record(
        self, key: UsageKey, value: int, transaction_id: str, limit: int | None = None, event: UsageEvent | None = None
    ) -> Recorded:
        # No await between the read and the write: one check-and-add at a time, as the Redis script is.
        now = time.monotonic()
        used = self._counters.get(key, 0)
        seen = self._transactions.get((key.subscription_id, transaction_id))
        if seen is not None and seen > now:
            return Recorded(used, recorded=False, duplicate=True)
        if limit is not None and used + value > limit:
            return Recorded(used, recorded=False, duplicate=False)
        self._counters[key] = used = used + value
        if event is not None and self._outbox is not None:
            self._outbox.add(event)
        self._transactions[(key.subscription_id, transaction_id)] = now + TRANSACTION_WINDOW_SECONDS
        if len(self._transactions) > 1_000_000:  # forget expired ids now and then
            self._transactions = {k: t for k, t in self._transactions.items() if t > now}
        return Recorded(used, recorded=True, duplicate=False)
