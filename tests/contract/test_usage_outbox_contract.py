"""One contract for the usage outbox (UsageOutbox) and the counters that fill it: in memory, on a real
Redis and on a Redis Cluster. What is counted is queued in the same step; nothing else is."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

import pytest

from entitlements_sidecar.domain.usage import UsageCounter, UsageEvent, UsageKey
from entitlements_sidecar.domain.usage_outbox import UsageOutbox
from entitlements_sidecar.store.usage_memory import MemoryUsageCounter
from entitlements_sidecar.store.usage_outbox_memory import MemoryUsageOutbox
from entitlements_sidecar.store.usage_outbox_redis import RedisUsageOutbox
from entitlements_sidecar.store.usage_redis import RedisUsageCounter
from tests.support.redis_cluster import redis_client
from tests.support.wait import eventually_async

KEY = UsageKey("sub_a", "api_calls", 1_767_225_600_000)


def event(transaction_id: str, subscription: str = "sub_a", **properties: str) -> UsageEvent:
    return UsageEvent(transaction_id, subscription, "api_calls", 1_767_225_601.25, properties)


@dataclass
class Usage:
    counter: UsageCounter
    outbox: UsageOutbox


@pytest.fixture(params=["memory", "redis", "cluster"])
async def usage(request: pytest.FixtureRequest, key_prefix: str) -> AsyncIterator[Usage]:
    if request.param == "memory":
        memory = MemoryUsageOutbox()
        yield Usage(MemoryUsageCounter(memory), memory)
        return
    client = redis_client(request)
    outbox = RedisUsageOutbox(client, key_prefix, consumer="forwarder-0")
    await outbox.start()
    yield Usage(RedisUsageCounter(client, key_prefix), outbox)
    await client.aclose()


async def test_what_is_recorded_is_queued_once_and_nothing_else(usage: Usage) -> None:
    first = event("t1", n="3")
    assert (await usage.counter.record(KEY, 3, "t1", limit=5, event=first)).recorded
    await usage.counter.record(KEY, 3, "t1", limit=5, event=first)  # a duplicate
    await usage.counter.record(KEY, 3, "t2", limit=5, event=event("t2", n="3"))  # over the limit
    await usage.counter.record(KEY, 1, "t3")  # forwarding off for this one
    other = UsageKey("sub_b", KEY.metric_code, KEY.period_start_ms)
    second = event("t1", "sub_b")  # the same id for another subscription is another event
    assert (await usage.counter.record(other, 1, "t1", event=second)).recorded
    assert await usage.outbox.depth() == 2
    entries = await usage.outbox.read(10)
    assert sorted((e.event for e in entries), key=lambda e: e.subscription_id) == [first, second]


async def test_acknowledged_entries_go_and_the_rest_stay(usage: Usage) -> None:
    for index in range(5):
        await usage.counter.record(KEY, 1, f"t{index}", event=event(f"t{index}"))
    batch = await usage.outbox.read(3)
    assert len(batch) == 3
    await usage.outbox.ack([entry.id for entry in batch[:2]])
    assert await usage.outbox.depth() == 3
    rest = await usage.outbox.read(10)
    assert {e.event.transaction_id for e in rest} == {"t3", "t4"}  # read, unacknowledged: not handed twice
    await usage.outbox.ack([entry.id for entry in [batch[2], *rest]])
    assert (await usage.outbox.depth(), await usage.outbox.read(10)) == (0, [])


async def test_a_refused_entry_is_kept_aside_with_its_reason(usage: Usage) -> None:
    await usage.counter.record(KEY, 1, "t1", event=event("t1"))
    [entry] = await usage.outbox.read(10)
    await usage.outbox.reject([entry], ['{"timestamp":["invalid_format"]}'])
    assert await usage.outbox.depth() == 0
    outbox = usage.outbox
    refused = (
        outbox.refused if isinstance(outbox, MemoryUsageOutbox) else await cast(RedisUsageOutbox, outbox).refused()
    )
    assert refused == [(entry.event, '{"timestamp":["invalid_format"]}')]


@pytest.mark.parametrize("backend", ["redis", "cluster"])
async def test_a_stopped_forwarders_entries_are_read_again_or_claimed(
    request: pytest.FixtureRequest, backend: str, key_prefix: str
) -> None:
    client = redis_client(request, backend)
    counter = RedisUsageCounter(client, key_prefix)
    for index in range(40):  # over many subscriptions, so over many shards
        key = UsageKey(f"sub_{index}", KEY.metric_code, KEY.period_start_ms)
        await counter.record(key, 1, "t", event=event("t", f"sub_{index}"))
    before = RedisUsageOutbox(client, key_prefix, consumer="syncer-0", claim_idle_ms=60_000)
    await before.start()
    taken = await before.read(25)  # ... and the process dies before acknowledging
    after = RedisUsageOutbox(client, key_prefix, consumer="syncer-0", claim_idle_ms=60_000)
    await after.start()
    again = await after.read(100)  # its own pending entries first, without waiting for them to look idle
    assert {e.id for e in taken} <= {e.id for e in again}
    other = RedisUsageOutbox(client, key_prefix, consumer="syncer-1", claim_idle_ms=200)
    await other.start()
    claimed = await eventually_async(lambda: other.read(100), timeout=5, what="claim after 200 ms idle")
    everything = {e.id for e in again} | {e.id for e in claimed} | {e.id for e in await other.read(100)}
    assert len(everything) == 40 and await other.depth() == 40
    await client.aclose()


@pytest.mark.parametrize("backend", ["redis", "cluster"])
async def test_a_lost_consumer_group_is_created_again_and_later_events_are_read(
    request: pytest.FixtureRequest, backend: str, key_prefix: str
) -> None:
    client = redis_client(request, backend)
    outbox = RedisUsageOutbox(client, key_prefix, consumer="syncer-0")
    await outbox.start()
    counter = RedisUsageCounter(client, key_prefix)
    for shard in range(16):  # the outbox's streams (store/usage_keys.py), and their group with them
        await client.delete(f"{key_prefix}uo:{{u{shard}}}")
    await counter.record(KEY, 1, "t1", event=event("t1"))  # Redis restarted empty: the stream, no group
    assert await outbox.read(10) == []  # finds the group gone and creates it again, from the start
    assert [e.event.transaction_id for e in await outbox.read(10)] == ["t1"]
    await client.aclose()
