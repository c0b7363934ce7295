"""The queue worker acknowledges only what was applied: on the in-memory queue with a handler that
fails on purpose."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from entitlements_sidecar.domain.errors import SourceRejectedError, SourceUnavailableError
from entitlements_sidecar.domain.events import SyncEvent, Target
from entitlements_sidecar.store.map_meta_memory import MemoryMapMeta
from entitlements_sidecar.store.memory_queue import MemoryQueue
from entitlements_sidecar.sync.worker import SyncWorker
from tests.support.wait import eventually_async

EVENT = SyncEvent(Target.SUBSCRIPTION, "sub_a", "subscription.updated")


class Handler:
    def __init__(self) -> None:
        self.applied: list[SyncEvent] = []
        self.failures: list[Exception] = []  # raised, in order, before applying

    async def apply(self, events: Sequence[SyncEvent]) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.applied.extend(events)


@pytest.fixture
async def running() -> AsyncIterator[tuple[SyncWorker, Handler, MemoryQueue]]:
    queue, handler = MemoryQueue(wait_seconds=0.01), Handler()
    await queue.start()
    worker = SyncWorker(queue, handler, MemoryMapMeta(), beat_every_ms=10)
    task = asyncio.create_task(worker.run())
    yield worker, handler, queue
    worker.stop()
    await asyncio.wait_for(task, 5)


async def test_an_applied_batch_is_acknowledged(running: tuple[SyncWorker, Handler, MemoryQueue]) -> None:
    worker, handler, queue = running
    await queue.publish(EVENT, "k1")
    await eventually_async(lambda: queue_empty(queue), what="the batch acknowledged")
    assert handler.applied == [EVENT] and worker.problem is None


async def test_a_source_that_is_down_keeps_the_batch_until_it_is_back(
    running: tuple[SyncWorker, Handler, MemoryQueue],
) -> None:
    _, handler, queue = running
    handler.failures = [SourceUnavailableError("lago down"), SourceUnavailableError("lago down")]
    await queue.publish(EVENT, "k1")
    await eventually_async(lambda: queue_empty(queue), what="the batch applied once Lago answered")
    assert handler.applied == [EVENT] and not handler.failures


async def test_a_refused_api_key_keeps_the_batch_pending_and_says_so(
    running: tuple[SyncWorker, Handler, MemoryQueue],
) -> None:
    worker, handler, queue = running
    handler.failures = [SourceRejectedError("lago 401 on /subscriptions/sub_a")]
    await queue.publish(EVENT, "k1")
    await eventually_async(lambda: has_problem(worker), what="the refusal reported")
    assert worker.problem is not None and "401" in worker.problem
    assert await queue.depth() == 1 and handler.applied == []  # not acknowledged, not dropped


async def test_an_unexpected_error_drops_the_batch_for_reconciliation(
    running: tuple[SyncWorker, Handler, MemoryQueue],
) -> None:
    _, handler, queue = running
    handler.failures = [KeyError("a bug")]
    await queue.publish(EVENT, "k1")
    await eventually_async(lambda: queue_empty(queue), what="the failed batch acknowledged")
    assert handler.applied == []  # dropped: retrying the same input would fail forever
    await queue.publish(SyncEvent(Target.PLAN, "pro", "plan.updated"), "k2")
    await eventually_async(lambda: queue_empty(queue), what="the next batch applied")
    assert handler.applied == [SyncEvent(Target.PLAN, "pro", "plan.updated")]


async def queue_empty(queue: MemoryQueue) -> bool:
    return await queue.depth() == 0


async def has_problem(worker: SyncWorker) -> bool:
    return worker.problem is not None
