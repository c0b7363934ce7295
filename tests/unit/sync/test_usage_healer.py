"""Healing folds the source's count into the counters in use, never lowers one, leaves old periods
alone, and answers Lago's usage alerts at once: on the memory store and counters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from entitlements_sidecar.domain.events import SyncEvent, Target, usage_key
from entitlements_sidecar.domain.model import (
    ResolvedFeature,
    ResolvedPrivilege,
    ResolvedSubscription,
    SubscriptionStatus,
    ValueType,
)
from entitlements_sidecar.domain.periods import Billing, Period, period_for
from entitlements_sidecar.domain.usage import Aggregation, Counted, Meter, Meters, UsageKey
from entitlements_sidecar.store.memory import MemoryStore
from entitlements_sidecar.store.usage_memory import MemoryUsageCounter
from entitlements_sidecar.sync.usage_healer import UsageHealer, WithUsageEvents
from tests.support.builders import put_resolved

CALLS = Meter("api", "api_calls", Aggregation.COUNT, quota_privilege="max")
METERS = Meters({"api_calls": CALLS}, {"api": CALLS})


class LagoCount:
    def __init__(self) -> None:
        self.units_by_subscription: dict[str, int | None] = {}

    async def units(self, subscription: ResolvedSubscription, metric_code: str, period: Period) -> int | None:
        return self.units_by_subscription.get(subscription.external_id)


def current_key(subscription_id: str) -> UsageKey:
    period = period_for(datetime.now(UTC), None, Billing())
    return UsageKey(subscription_id, "api_calls", period.start_ms)


@pytest.fixture
async def parts() -> tuple[UsageHealer, MemoryUsageCounter, LagoCount]:
    store = MemoryStore()
    await store.start()
    feature = ResolvedFeature("api", privileges={"max": ResolvedPrivilege("max", ValueType.INTEGER, 10)})
    for name in ("sub_a", "sub_b"):
        await put_resolved(
            store, ResolvedSubscription(name, "acme", "pro", SubscriptionStatus.ACTIVE, None, {"api": feature})
        )
    counter, lago = MemoryUsageCounter(), LagoCount()
    return UsageHealer(counter, lago, store, lambda: METERS, interval_seconds=60), counter, lago


async def test_a_pass_raises_counters_to_the_sources_count_and_never_lowers_one(
    parts: tuple[UsageHealer, MemoryUsageCounter, LagoCount],
) -> None:
    healer, counter, lago = parts
    await counter.record(current_key("sub_a"), 3, "t1")
    await counter.record(current_key("sub_b"), 6, "t1")
    lago.units_by_subscription = {"sub_a": 5, "sub_b": 2}  # sub_a sent 2 to Lago itself; sub_b's are in flight
    assert await healer.heal_active() == 1
    healed, kept = await counter.read(current_key("sub_a")), await counter.read(current_key("sub_b"))
    assert healed is not None and kept is not None
    assert (healed.used, healed.reconciled_ms is not None, kept.used, healer.raised) == (5, True, 6, 1)


async def test_an_old_period_and_a_source_that_cannot_say_are_left_alone(
    parts: tuple[UsageHealer, MemoryUsageCounter, LagoCount],
) -> None:
    healer, counter, lago = parts
    old = UsageKey("sub_a", "api_calls", current_key("sub_a").period_start_ms - 31 * 86_400_000)
    await counter.record(old, 1, "t0")
    await counter.record(current_key("sub_b"), 1, "t1")
    lago.units_by_subscription = {"sub_a": 50, "sub_b": None}
    assert await healer.heal_active() == 0
    assert (await counter.read(old), await counter.read(current_key("sub_b"))) == (Counted(1), Counted(1))


class Refresher:
    def __init__(self) -> None:
        self.applied: list[SyncEvent] = []

    async def apply(self, events: Sequence[SyncEvent]) -> None:
        self.applied += events


async def test_a_usage_alert_heals_at_once_and_other_events_go_on(
    parts: tuple[UsageHealer, MemoryUsageCounter, LagoCount],
) -> None:
    healer, counter, lago = parts
    lago.units_by_subscription = {"sub_a": 12}  # past the quota of 10 at Lago
    refresher = Refresher()
    plan = SyncEvent(Target.PLAN, "pro", "plan.updated")
    alert = SyncEvent(Target.USAGE, usage_key("sub_a", "api_calls"), "alert.triggered")
    unmetered = SyncEvent(Target.USAGE, usage_key("sub_a", "storage_gb"), "alert.triggered")
    await WithUsageEvents(refresher, healer).apply([plan, alert, unmetered])
    assert refresher.applied == [plan]
    healed = await counter.read(current_key("sub_a"))
    assert healed is not None and healed.used == 12
    assert await counter.read(UsageKey("sub_a", "storage_gb", current_key("sub_a").period_start_ms)) is None
