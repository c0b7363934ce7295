"""One contract for the sync event queue: the in-process queue and the Redis Stream (real Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from entitlements_sidecar.domain.errors import StoreUnavailableError
from entitlements_sidecar.domain.events import EventQueue, SyncEvent, Target
from entitlements_sidecar.store.memory_queue import MemoryQueue
from entitlements_sidecar.store.redis_queue import QueueMissingError, RedisStreamQueue
from tests.support.redis_cluster import redis_client
from tests.support.wait import eventually_async

EVENT = SyncEvent(Target.SUBSCRIPTION, "sub_1", "subscription.updated")


@pytest.fixture(params=["memory", "redis", "cluster"])
async def queue(request: pytest.FixtureRequest, key_prefix: str) -> AsyncIterator[EventQueue]:
    if request.param == "memory":
        memory = MemoryQueue(wait_seconds=0.05)
        await memory.start()
        yield memory
        return
    client = redis_client(request)
    stream = RedisStreamQueue(client, key_prefix, block_ms=50)
    await stream.start()
    yield stream
    await client.aclose()


async def test_publish_read_ack(queue: EventQueue) -> None:
    assert await queue.publish(EVENT, "key-1")
    plan = SyncEvent(Target.PLAN, "pro.v2", "plan.updated")
    assert await queue.publish(plan, "key-2")
    assert await queue.depth() == 2
    batch = await queue.read(10)
    assert [q.event for q in batch] == [EVENT, plan]
    assert await queue.read(10) == []  # delivered, not yet acknowledged: not handed out twice
    await queue.ack([q.id for q in batch])
    assert await queue.depth() == 0


async def test_duplicates_are_refused(queue: EventQueue) -> None:
    assert await queue.publish(EVENT, "same")
    assert not await queue.publish(EVENT, "same")
    assert not await queue.publish(SyncEvent(Target.FEATURE, "x", "feature.updated"), "same")
    assert len(await queue.read(10)) == 1


async def test_read_respects_count_and_waits_briefly_when_empty(queue: EventQueue) -> None:
    for index in range(5):
        await queue.publish(SyncEvent(Target.SUBSCRIPTION, f"s{index}", "subscription.updated"), f"k{index}")
    assert [q.event.key for q in await queue.read(3)] == ["s0", "s1", "s2"]
    assert [q.event.key for q in await queue.read(3)] == ["s3", "s4"]
    started = asyncio.get_running_loop().time()
    assert await queue.read(3) == []
    assert asyncio.get_running_loop().time() - started < 2


@pytest.mark.parametrize("backend", ["redis", "cluster"])
async def test_a_dead_readers_entries_are_claimed_by_another(
    request: pytest.FixtureRequest, backend: str, key_prefix: str
) -> None:
    client = redis_client(request, backend)
    first = RedisStreamQueue(client, key_prefix, claim_idle_ms=200, block_ms=50, consumer="first")
    second = RedisStreamQueue(client, key_prefix, claim_idle_ms=200, block_ms=50, consumer="second")
    await first.start()
    await second.start()
    await first.publish(EVENT, "k")
    taken = await first.read(10)  # ... and the first reader dies before acknowledging
    assert len(taken) == 1
    assert await second.read(10) == []  # not idle long enough yet
    claimed = await eventually_async(lambda: second.read(10), timeout=5, what="claim after 200 ms idle")
    assert [q.event for q in claimed] == [EVENT] and claimed[0].id == taken[0].id
    await second.ack([q.id for q in claimed])
    assert await second.depth() == 0
    await client.aclose()


@pytest.mark.parametrize("backend", ["redis", "cluster"])
async def test_a_restarted_consumer_reads_its_own_pending_entries_without_waiting(
    request: pytest.FixtureRequest, backend: str, key_prefix: str
) -> None:
    client = redis_client(request, backend)
    before = RedisStreamQueue(client, key_prefix, claim_idle_ms=60_000, block_ms=50, consumer="syncer-0")
    await before.start()
    for index in range(3):
        await before.publish(SyncEvent(Target.SUBSCRIPTION, f"s{index}", "subscription.updated"), f"k{index}")
    taken = await before.read(2)  # ... and the process dies before acknowledging
    after = RedisStreamQueue(client, key_prefix, claim_idle_ms=60_000, block_ms=50, consumer="syncer-0")
    await after.start()
    again = await after.read(10)  # its own pending entries first, long before they look idle
    assert [q.id for q in again] == [q.id for q in taken]
    assert [q.event.key for q in await after.read(10)] == ["s2"]  # then what nobody read yet
    other = RedisStreamQueue(client, key_prefix, claim_idle_ms=60_000, block_ms=50, consumer="syncer-1")
    await other.start()
    assert await other.read(10) == []  # another consumer's entries wait for the idle time
    await client.aclose()


@pytest.mark.parametrize("backend", ["redis", "cluster"])
async def test_a_lost_queue_refuses_entries_until_a_reader_creates_it_again(
    request: pytest.FixtureRequest, backend: str, key_prefix: str
) -> None:
    client = redis_client(request, backend)
    queue = RedisStreamQueue(client, key_prefix, block_ms=50)
    await queue.start()
    await queue.publish(EVENT, "before")
    [taken] = await queue.read(10)
    await client.delete(f"{key_prefix}{{events}}")  # what a Redis restarted empty did to it
    with pytest.raises(QueueMissingError, match="consumer group is missing"):
        await queue.publish(EVENT, "during")
    assert isinstance(QueueMissingError("x"), StoreUnavailableError)  # so the intake answers 503
    await queue.ack([taken.id])  # its entry went with it: nothing to do, and no error
    assert await queue.read(10) == []  # ... and the reader created the group again
    assert await queue.publish(EVENT, "during")  # the refused delivery was not taken as seen
    assert [q.event for q in await queue.read(10)] == [EVENT]
    await client.aclose()
