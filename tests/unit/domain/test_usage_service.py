"""Check, consume and report usage on the memory store and memory counters."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from entitlements_sidecar.domain.errors import InvalidArgumentError
from entitlements_sidecar.domain.map_status import MapStatus
from entitlements_sidecar.domain.model import (
    ResolvedFeature,
    ResolvedPrivilege,
    ResolvedSubscription,
    SubscriptionStatus,
    ValueType,
)
from entitlements_sidecar.domain.periods import Period
from entitlements_sidecar.domain.usage import Aggregation, Meter, Meters, UsageEvent, UsageReason
from entitlements_sidecar.domain.usage_service import UsageService
from entitlements_sidecar.store.memory import MemoryStore
from entitlements_sidecar.store.usage_memory import MemoryUsageCounter
from entitlements_sidecar.store.usage_outbox_memory import MemoryUsageOutbox
from tests.support.builders import put_resolved

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
CALLS = Meter(
    "api", "api_calls", Aggregation.SUM, quota_privilege="calls_max", allowance_privilege="calls_included", property="n"
)
TOKENS = Meter("llm", "tokens", Aggregation.SUM, quota_privilege="tokens_max", property="tokens")
METERS = Meters({"api_calls": CALLS, "tokens": TOKENS}, {"api": CALLS, "llm": TOKENS})


def integer(code: str, value: int) -> ResolvedPrivilege:
    return ResolvedPrivilege(code, ValueType.INTEGER, value)


@pytest.fixture
async def store() -> MemoryStore:
    store = MemoryStore()
    await store.start()
    api = ResolvedFeature(
        "api", privileges={"calls_max": integer("calls_max", 10), "calls_included": integer("calls_included", 4)}
    )
    llm = ResolvedFeature("llm", privileges={"tokens_max": integer("tokens_max", 1000)})
    started = datetime(2026, 8, 1, tzinfo=UTC)
    await put_resolved(
        store,
        ResolvedSubscription("sub_a", "acme", "pro", SubscriptionStatus.ACTIVE, started, {"api": api, "llm": llm}),
        ResolvedSubscription("sub_b", "acme", "free", SubscriptionStatus.ACTIVE, started, {}),
    )
    return store


@pytest.fixture
def outbox() -> MemoryUsageOutbox:
    return MemoryUsageOutbox()


@pytest.fixture
def service(store: MemoryStore, outbox: MemoryUsageOutbox) -> UsageService:
    return UsageService(
        store, MapStatus(complete=True), lambda: METERS, MemoryUsageCounter(outbox), forward=True, clock=lambda: NOW
    )


async def test_consume_records_within_the_quota_and_refuses_past_it(service: UsageService) -> None:
    first = await service.consume("sub_a", "api", 4, "t1")
    assert (first.decision.allowed, first.decision.reason, first.recorded, first.decision.remaining) == (
        True, UsageReason.WITHIN_ALLOWANCE, True, 6,
    )  # fmt: skip
    over_allowance = await service.consume("sub_a", "api", 5, "t2")
    assert (over_allowance.decision.reason, over_allowance.decision.billable) == (UsageReason.OVER_ALLOWANCE, 5)
    refused = await service.consume("sub_a", "api", 2, "t3")
    assert (refused.decision.allowed, refused.decision.reason, refused.recorded) == (
        False,
        UsageReason.OVER_QUOTA,
        False,
    )
    assert (await service.check("sub_a", "api", 1)).decision.remaining == 0  # 9 used: exactly one left
    assert first.period.start == datetime(2026, 12, 1, tzinfo=UTC)


async def test_a_repeated_transaction_adds_nothing(service: UsageService) -> None:
    await service.consume("sub_a", "api", 3, "t1")
    again = await service.consume("sub_a", "api", 3, "t1")
    assert (again.duplicate, again.recorded, again.decision.used) == (True, False, 3)


async def test_racing_consumers_never_pass_the_quota(service: UsageService) -> None:
    answers = await asyncio.gather(*(service.consume("sub_a", "api", 1, f"t{i}") for i in range(30)))
    assert sum(a.recorded for a in answers) == 10
    assert (await service.check("sub_a", "api", 1)).decision.reason is UsageReason.OVER_QUOTA


async def test_report_counts_what_happened_and_checks_see_it(service: UsageService) -> None:
    await service.report("sub_a", "tokens", {"tokens": 600}, "e1")
    await service.report("sub_a", "tokens", {"tokens": 600}, "e2")  # reported usage is never refused...
    check = await service.check("sub_a", "llm", 1)
    assert (check.decision.used, check.decision.allowed) == (1200, False)  # ...but the next use is


async def test_a_subject_without_the_feature_is_not_entitled(service: UsageService) -> None:
    answer = await service.consume("sub_b", "api", 1, "t1")
    assert (answer.decision.allowed, answer.decision.reason, answer.recorded) == (
        False,
        UsageReason.NOT_ENTITLED,
        False,
    )


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.consume("sub_a", "sso", 1, "t"), "feature_code"),
        (lambda s: s.consume("sub_a", "api", 0, "t"), "value"),
        (lambda s: s.consume("sub_a", "api", 1, ""), "transaction_id"),
        (lambda s: s.consume("a/b", "api", 1, "t"), "subscription_id"),
        (lambda s: s.check("sub_a", "api", -1), "requested_usage"),
        (lambda s: s.report("sub_a", "nope", {}, "e", where="events[2]."), "events[2].metric_code"),
        (
            lambda s: s.report("sub_a", "tokens", {"tokens": 1.5}, "e", where="events[2]."),
            "events[2].properties.tokens",
        ),
        (lambda s: s.report("sub_zzz", "tokens", {"tokens": 1}, "e"), "subscription_id"),
        (lambda s: s.report("sub_b", "tokens", {"tokens": 1}, "e"), "subscription_id"),
        (lambda s: s.report("sub_a", "tokens", {"tokens": 1}, "e", datetime(2027, 1, 1, tzinfo=UTC)), "timestamp"),
    ],
)
async def test_bad_input_names_the_field_and_counts_nothing(
    service: UsageService, outbox: MemoryUsageOutbox, call: object, field: str
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await call(service)  # type: ignore[operator]
    assert caught.value.field == field
    assert (await service.check("sub_a", "api", 1)).decision.used == 0
    assert (await service.check("sub_a", "llm", 1)).decision.used == 0
    assert await outbox.depth() == 0  # nothing queued for Lago either


async def test_what_is_counted_is_queued_for_lago_and_nothing_else(
    service: UsageService, outbox: MemoryUsageOutbox
) -> None:
    await service.consume("sub_a", "api", 4, "t1")
    await service.consume("sub_a", "api", 4, "t1")  # a retry: counted once, queued once
    await service.consume("sub_a", "api", 50, "t2")  # over the quota: neither counted nor queued
    await service.consume("sub_b", "api", 1, "t3")  # not entitled
    at = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    await service.report("sub_a", "tokens", {"tokens": "7", "region": "eu"}, "e1", at)
    assert [entry.event for entry in await outbox.read(10)] == [
        UsageEvent("t1", "sub_a", "api_calls", NOW.timestamp(), {"n": "4"}),
        UsageEvent("e1", "sub_a", "tokens", at.timestamp(), {"tokens": "7", "region": "eu"}),
    ]


async def test_without_forwarding_nothing_is_queued(store: MemoryStore, outbox: MemoryUsageOutbox) -> None:
    service = UsageService(
        store, MapStatus(complete=True), lambda: METERS, MemoryUsageCounter(outbox), forward=False, clock=lambda: NOW
    )
    assert (await service.consume("sub_a", "api", 4, "t1")).recorded
    assert await outbox.depth() == 0


async def test_a_count_meter_counts_one_use_per_event(store: MemoryStore, outbox: MemoryUsageOutbox) -> None:
    counted = Meter("api", "api_calls", Aggregation.COUNT, quota_privilege="calls_max")
    meters = Meters({"api_calls": counted}, {"api": counted})
    service = UsageService(
        store, MapStatus(complete=True), lambda: meters, MemoryUsageCounter(outbox), forward=True, clock=lambda: NOW
    )
    with pytest.raises(InvalidArgumentError) as caught:
        await service.consume("sub_a", "api", 3, "t1")  # Lago would count one event, not three
    assert (caught.value.field, await outbox.depth()) == ("value", 0)
    assert (await service.consume("sub_a", "api", 1, "t1")).decision.used == 0
    assert [entry.event.properties for entry in await outbox.read(10)] == [{}]


class LagoCount:
    """A usage source that says what it is told (None: it cannot say)."""

    def __init__(self, units: int | None) -> None:
        self.units_said = units
        self.asked: list[tuple[str, str, datetime]] = []

    async def units(self, subscription: ResolvedSubscription, metric_code: str, period: Period) -> int | None:
        self.asked.append((subscription.external_id, metric_code, period.start))
        return self.units_said


async def test_a_new_period_starts_from_the_sources_count(store: MemoryStore, outbox: MemoryUsageOutbox) -> None:
    lago = LagoCount(8)  # 8 units reached Lago by other paths (or before Redis lost our counter)
    service = UsageService(
        store, MapStatus(complete=True), lambda: METERS, MemoryUsageCounter(outbox), True, lago, clock=lambda: NOW
    )
    allowed = await service.consume("sub_a", "api", 2, "t1")
    assert (allowed.recorded, allowed.decision.used, allowed.reconciled_ms is not None) == (True, 8, True)
    refused = await service.consume("sub_a", "api", 1, "t2")  # 10 of 10
    assert (refused.recorded, refused.decision.reason) == (False, UsageReason.OVER_QUOTA)
    assert lago.asked == [("sub_a", "api_calls", datetime(2026, 12, 1, tzinfo=UTC))]  # once: the counter exists now
    assert (await service.check("sub_a", "llm", 1)).decision.used == 8  # a check seeds too (Lago said 8 tokens)


async def test_a_source_that_cannot_say_leaves_counting_from_zero_unreconciled(store: MemoryStore) -> None:
    service = UsageService(
        store, MapStatus(complete=True), lambda: METERS, MemoryUsageCounter(), False, LagoCount(None), clock=lambda: NOW
    )
    answer = await service.consume("sub_a", "api", 4, "t1")
    assert (answer.recorded, answer.decision.used, answer.reconciled_ms) == (True, 0, None)
