"""One contract for usage counters (UsageCounter), in memory and on a real Redis and Redis Cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from entitlements_sidecar.domain.usage import Counted, UsageCounter, UsageKey
from entitlements_sidecar.store.usage_memory import MemoryUsageCounter
from entitlements_sidecar.store.usage_redis import RedisUsageCounter
from tests.support.redis_cluster import redis_client

KEY = UsageKey("sub_a", "api_calls", 1_767_225_600_000)


@pytest.fixture(params=["memory", "redis", "cluster"])
async def counter(request: pytest.FixtureRequest, key_prefix: str) -> AsyncIterator[UsageCounter]:
    if request.param == "memory":
        yield MemoryUsageCounter()
        return
    client = redis_client(request)
    yield RedisUsageCounter(client, key_prefix)
    await client.aclose()


async def used(counter: UsageCounter, key: UsageKey = KEY) -> int | None:
    counted = await counter.read(key)
    return None if counted is None else counted.used


async def test_usage_adds_up_per_period(counter: UsageCounter) -> None:
    assert await counter.read(KEY) is None
    assert (await counter.record(KEY, 3, "t1")).used == 3
    assert (await counter.record(KEY, 4, "t2")).used == 7
    next_period = UsageKey(KEY.subscription_id, KEY.metric_code, KEY.period_start_ms + 31 * 86_400_000)
    assert await counter.read(next_period) is None  # a new period is a new counter: no reset job
    assert await counter.read(UsageKey("sub_b", KEY.metric_code, KEY.period_start_ms)) is None


async def test_a_transaction_counts_once(counter: UsageCounter) -> None:
    first = await counter.record(KEY, 5, "t1")
    again = await counter.record(KEY, 5, "t1")
    assert (first.recorded, first.duplicate, again.recorded, again.duplicate) == (True, False, False, True)
    assert await used(counter) == 5


async def test_a_limit_is_never_passed_and_a_refusal_counts_nothing(counter: UsageCounter) -> None:
    assert (await counter.record(KEY, 8, "t1", limit=10)).recorded
    refused = await counter.record(KEY, 3, "t2", limit=10)
    assert (refused.recorded, refused.duplicate, refused.used) == (False, False, 8)
    assert (await counter.record(KEY, 2, "t3", limit=10)).used == 10  # exactly the limit is allowed
    assert (await counter.record(KEY, 3, "t2", limit=20)).recorded  # a refused id may be tried again


async def test_racing_consumers_never_overshoot(counter: UsageCounter) -> None:
    results = await asyncio.gather(*(counter.record(KEY, 1, f"t{i}", limit=25) for i in range(100)))
    assert sum(r.recorded for r in results) == 25
    assert await used(counter) == 25


async def test_a_counter_that_must_be_seeded_refuses_until_it_is(counter: UsageCounter) -> None:
    unseeded = await counter.record(KEY, 2, "t1", limit=10, seeded_only=True)
    assert (unseeded.unseeded, unseeded.recorded, await counter.read(KEY)) == (True, False, None)
    assert await counter.raise_to(KEY, 7, 1_000) == (None, 7)  # Lago had counted 7 already
    seeded = await counter.record(KEY, 2, "t1", limit=10, seeded_only=True)
    assert (seeded.recorded, seeded.used, seeded.reconciled_ms) == (True, 9, 1_000)
    assert not (await counter.record(KEY, 2, "t2", limit=10, seeded_only=True)).recorded  # 11 > 10


async def test_raising_never_lowers_and_a_failed_read_is_not_a_reconciliation(counter: UsageCounter) -> None:
    await counter.record(KEY, 5, "t1")
    assert await counter.raise_to(KEY, 3, 2_000) == (5, 5)  # Lago has not processed ours yet
    assert await counter.raise_to(KEY, 8, 3_000) == (5, 8)  # Lago counted usage from elsewhere
    assert await counter.read(KEY) == Counted(8, 3_000)
    other = UsageKey("sub_c", KEY.metric_code, KEY.period_start_ms)
    assert await counter.raise_to(other, 0, None) == (None, 0)  # Lago unreachable: counted from 0 here
    assert await counter.read(other) == Counted(0, None)


async def test_counters_recorded_to_are_listed_as_active(counter: UsageCounter) -> None:
    import time

    before = int(time.time() * 1000) - 1
    await counter.record(KEY, 1, "t1")
    await counter.raise_to(UsageKey("sub_z", KEY.metric_code, KEY.period_start_ms), 4, None)  # seeded, unused
    assert await counter.active(before) == [KEY]
    assert await counter.active(int(time.time() * 1000) + 60_000) == []


async def test_an_unreachable_redis_is_store_unavailable_and_counts_nothing() -> None:
    from entitlements_sidecar.domain.errors import StoreUnavailableError
    from entitlements_sidecar.store.redis_connection import open_redis
    from tests.support.processes import free_port

    client = open_redis(f"redis://127.0.0.1:{free_port()}/0", 0.5)  # nothing listens there
    counter = RedisUsageCounter(client, "down:")
    with pytest.raises(StoreUnavailableError):  # UNAVAILABLE on the wire (transport/wire.py)
        await counter.record(KEY, 1, "t1", limit=10)
    with pytest.raises(StoreUnavailableError):
        await counter.read(KEY)
    with pytest.raises(StoreUnavailableError):
        await counter.raise_to(KEY, 3, None)
    await client.aclose()
