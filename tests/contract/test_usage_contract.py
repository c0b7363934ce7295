"""One contract for usage counters (UsageCounter), in memory and on a real Redis and Redis Cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from entitlements_sidecar.domain.usage import UsageCounter, UsageKey
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


async def test_usage_adds_up_per_period(counter: UsageCounter) -> None:
    assert await counter.used(KEY) == 0
    assert (await counter.record(KEY, 3, "t1")).used == 3
    assert (await counter.record(KEY, 4, "t2")).used == 7
    next_period = UsageKey(KEY.subscription_id, KEY.metric_code, KEY.period_start_ms + 31 * 86_400_000)
    assert await counter.used(next_period) == 0  # a new period is a new counter: no reset job
    assert await counter.used(UsageKey("sub_b", KEY.metric_code, KEY.period_start_ms)) == 0


async def test_a_transaction_counts_once(counter: UsageCounter) -> None:
    first = await counter.record(KEY, 5, "t1")
    again = await counter.record(KEY, 5, "t1")
    assert (first.recorded, first.duplicate, again.recorded, again.duplicate) == (True, False, False, True)
    assert await counter.used(KEY) == 5


async def test_a_limit_is_never_passed_and_a_refusal_counts_nothing(counter: UsageCounter) -> None:
    assert (await counter.record(KEY, 8, "t1", limit=10)).recorded
    refused = await counter.record(KEY, 3, "t2", limit=10)
    assert (refused.recorded, refused.duplicate, refused.used) == (False, False, 8)
    assert (await counter.record(KEY, 2, "t3", limit=10)).used == 10  # exactly the limit is allowed
    assert (await counter.record(KEY, 3, "t2", limit=20)).recorded  # a refused id may be tried again


async def test_racing_consumers_never_overshoot(counter: UsageCounter) -> None:
    results = await asyncio.gather(*(counter.record(KEY, 1, f"t{i}", limit=25) for i in range(100)))
    assert sum(r.recorded for r in results) == 25
    assert await counter.used(KEY) == 25


async def test_an_unreachable_redis_is_store_unavailable_and_counts_nothing() -> None:
    from entitlements_sidecar.domain.errors import StoreUnavailableError
    from entitlements_sidecar.store.redis_connection import open_redis
    from tests.support.processes import free_port

    client = open_redis(f"redis://127.0.0.1:{free_port()}/0", 0.5)  # nothing listens there
    counter = RedisUsageCounter(client, "down:")
    with pytest.raises(StoreUnavailableError):  # UNAVAILABLE on the wire (transport/wire.py)
        await counter.record(KEY, 1, "t1", limit=10)
    with pytest.raises(StoreUnavailableError):
        await counter.used(KEY)
    await client.aclose()
