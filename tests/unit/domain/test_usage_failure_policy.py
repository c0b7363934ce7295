"""When the shared counters cannot be reached, each meter's failure policy answers, flagged: fail_closed
denies, fail_open counts in this sidecar and adds it to the shared counters once they are back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from entitlements_sidecar.domain.errors import StoreUnavailableError
from entitlements_sidecar.domain.map_status import MapStatus
from entitlements_sidecar.domain.model import (
    ResolvedFeature,
    ResolvedPrivilege,
    ResolvedSubscription,
    SubscriptionStatus,
    ValueType,
)
from entitlements_sidecar.domain.usage import (
    Aggregation,
    Counted,
    Meter,
    Meters,
    OnFailure,
    Recorded,
    UsageEvent,
    UsageKey,
    UsageReason,
)
from entitlements_sidecar.domain.usage_service import UsageService
from entitlements_sidecar.store.memory import MemoryStore
from entitlements_sidecar.store.usage_memory import MemoryUsageCounter
from entitlements_sidecar.store.usage_outbox_memory import MemoryUsageOutbox
from entitlements_sidecar.store.usage_spill import UsageSpill
from tests.support.builders import put_resolved

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
OPEN = Meter("api", "api_calls", Aggregation.SUM, quota_privilege="max", property="n", on_failure=OnFailure.FAIL_OPEN)
CLOSED = Meter("llm", "tokens", Aggregation.SUM, quota_privilege="max", property="tokens")
METERS = Meters({"api_calls": OPEN, "tokens": CLOSED}, {"api": OPEN, "llm": CLOSED})


class Flaky(MemoryUsageCounter):
    """A shared counter that can be made unreachable."""

    def __init__(self, outbox: MemoryUsageOutbox) -> None:
        super().__init__(outbox)
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailableError("redis unreachable")

    async def read(self, key: UsageKey) -> Counted | None:
        self._check()
        return await super().read(key)

    async def record(self, key: UsageKey, value: int, transaction_id: str, limit: int | None = None,
                     event: UsageEvent | None = None, seeded_only: bool = False) -> Recorded:  # fmt: skip
        self._check()
        return await super().record(key, value, transaction_id, limit, event, seeded_only)


@pytest.fixture
async def parts() -> tuple[UsageService, Flaky, UsageSpill, MemoryUsageOutbox]:
    store = MemoryStore()
    await store.start()
    limit = {"max": ResolvedPrivilege("max", ValueType.INTEGER, 10)}
    features = {"api": ResolvedFeature("api", privileges=limit), "llm": ResolvedFeature("llm", privileges=limit)}
    await put_resolved(store, ResolvedSubscription("sub_a", "acme", "pro", SubscriptionStatus.ACTIVE, None, features))
    outbox = MemoryUsageOutbox()
    shared = Flaky(outbox)
    spill = UsageSpill(shared)
    service = UsageService(
        store, MapStatus(complete=True), lambda: METERS, shared, True, fallback=spill, clock=lambda: NOW
    )
    return service, shared, spill, outbox


async def test_fail_closed_denies_and_fail_open_counts_here_flagged(
    parts: tuple[UsageService, Flaky, UsageSpill, MemoryUsageOutbox],
) -> None:
    service, shared, spill, _ = parts
    shared.down = True
    closed = await service.consume("sub_a", "llm", 1, "t1")
    assert (closed.decision.allowed, closed.decision.reason, closed.recorded, closed.fallback) == (
        False, UsageReason.FAILURE_POLICY, False, True,
    )  # fmt: skip
    opened = await service.consume("sub_a", "api", 4, "t1")
    assert (opened.decision.allowed, opened.decision.reason, opened.recorded, opened.fallback) == (
        True, UsageReason.FAILURE_POLICY, True, True,
    )  # fmt: skip
    assert (await service.consume("sub_a", "api", 4, "t1")).duplicate  # a retry is still one use
    check = await service.check("sub_a", "api", 1)
    assert (check.decision.allowed, check.decision.used, check.fallback) == (True, 4, True)
    assert not (await service.check("sub_a", "llm", 1)).decision.allowed
    with pytest.raises(StoreUnavailableError):  # a report of a fail-closed meter: the caller sends it again
        await service.report("sub_a", "tokens", {"tokens": 5}, "e1")
    reported = await service.report("sub_a", "api_calls", {"n": 2}, "e2")
    assert (reported.recorded, reported.fallback, len(spill)) == (True, True, 2)


async def test_what_was_counted_here_joins_the_shared_counter_and_outbox_once_it_is_back(
    parts: tuple[UsageService, Flaky, UsageSpill, MemoryUsageOutbox],
) -> None:
    service, shared, spill, outbox = parts
    await service.consume("sub_a", "api", 3, "t0")  # before the outage
    shared.down = True
    await service.consume("sub_a", "api", 4, "t1")
    assert await spill.replay() == 0  # still down: it waits
    shared.down = False
    assert await spill.replay() == 1 and len(spill) == 0
    after = await service.check("sub_a", "api", 1)
    assert (after.decision.used, after.fallback) == (7, False)
    assert [entry.event.transaction_id for entry in await outbox.read(10)] == ["t0", "t1"]  # Lago gets both


async def test_a_full_spill_fails_closed(parts: tuple[UsageService, Flaky, UsageSpill, MemoryUsageOutbox]) -> None:
    service, shared, _, _ = parts
    service._fallback = UsageSpill(shared, max_entries=1)
    shared.down = True
    assert (await service.consume("sub_a", "api", 1, "t1")).recorded
    full = await service.consume("sub_a", "api", 1, "t2")
    assert (full.decision.allowed, full.recorded, full.fallback) == (False, False, True)
