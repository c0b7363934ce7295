"""Folds the billing source's own count into the usage counters, so usage that reached it by other paths
(an app that also sends events to Lago itself, a backfill) is counted here too: every `interval` for each
counter recorded to in its current period, and at once for one subscription's metric when the source
says a usage threshold was crossed (Lago's `alert.triggered`).

A counter only ever moves up (`raise_to`), so a count the source has not processed yet, ours included, never
takes usage back; a raise is logged with both numbers. Reads are paced by the source's own rate limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from entitlements_sidecar.domain.clock import now_ms
from entitlements_sidecar.domain.errors import StoreUnavailableError
from entitlements_sidecar.domain.events import EventHandler, SyncEvent, Target, split_usage_key
from entitlements_sidecar.domain.periods import period_for
from entitlements_sidecar.domain.ports import EntitlementStore
from entitlements_sidecar.domain.usage import Meters, UsageCounter, UsageKey, UsageSource

log = logging.getLogger(__name__)
_LIFETIME_MS = 40 * 86_400_000  # counters live this long (store/usage_redis.py)


class UsageHealer:
    def __init__(
        self,
        counter: UsageCounter,
        source: UsageSource,
        store: EntitlementStore,
        meters: Callable[[], Meters],
        interval_seconds: float,
    ) -> None:
        self._counter = counter
        self._source = source
        self._store = store
        self._meters = meters
        self._interval = interval_seconds
        self._stopping = asyncio.Event()
        self.raised = 0  # counters healed upwards (metrics)
        self.cycle_seconds: float | None = None  # how long the last full pass took

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)
            if self._stopping.is_set():
                return
            started = asyncio.get_running_loop().time()
            try:
                await self.heal_active()
            except StoreUnavailableError as exc:
                log.warning("usage healing skipped: the store is unavailable", extra={"error": str(exc)})
                continue
            self.cycle_seconds = asyncio.get_running_loop().time() - started

    async def heal_active(self) -> int:
        """One pass over every counter recorded to in its period; how many were raised."""
        raised = 0
        for key in await self._counter.active(now_ms() - _LIFETIME_MS):
            if self._stopping.is_set():
                break
            if await self.heal(key.subscription_id, key.metric_code, key.period_start_ms):
                raised += 1
        return raised

    async def heal(self, subscription_id: str, metric_code: str, period_start_ms: int | None = None) -> bool:
        """Fold the source's count for the subscription's current period in; True if the counter rose.
        With `period_start_ms`, only if that is still the current period (an old counter is left alone)."""
        if metric_code not in self._meters().by_metric:
            return False  # not a metric we count
        record = await self._store.get_subscription(subscription_id)
        if record is None or not record.subscription.grants:
            return False
        subscription = record.subscription
        period = period_for(datetime.now(UTC), subscription.started_at, subscription.billing)
        if period_start_ms is not None and period.start_ms != period_start_ms:
            return False
        units = await self._source.units(subscription, metric_code, period)
        if units is None:
            return False  # the source could not say: the next pass asks again
        key = UsageKey(subscription_id, metric_code, period.start_ms)
        before, after = await self._counter.raise_to(key, units, now_ms())
        if before is not None and after > before:
            self.raised += 1
            log.info(
                "usage counter raised to the source's count (usage that reached it by other paths)",
                extra={"subscription": subscription_id, "metric": metric_code, "before": before, "after": after},
            )
            return True
        return False


class WithUsageEvents:
    """An EventHandler that heals usage for `Target.USAGE` events and hands every other event on."""

    def __init__(self, handler: EventHandler, healer: UsageHealer) -> None:
        self._handler = handler
        self._healer = healer

    async def apply(self, events: Sequence[SyncEvent]) -> None:
        others = [event for event in events if event.target is not Target.USAGE]
        if others:
            await self._handler.apply(others)
        for key in dict.fromkeys(event.key for event in events if event.target is Target.USAGE):
            subscription_id, metric_code = split_usage_key(key)
            await self._healer.heal(subscription_id, metric_code)
