"""Periodic reconciliation keeps going after a failed run and reports what each run repaired."""

from __future__ import annotations

import asyncio

from entitlements_sidecar.domain.errors import SourceUnavailableError
from entitlements_sidecar.domain.events import Progress, SyncReport
from entitlements_sidecar.store.map_meta_memory import MemoryMapMeta
from entitlements_sidecar.sync.reconciler import Reconciler, first_load
from tests.support.wait import eventually_async, holds_for_async


class Loader:
    def __init__(self) -> None:
        self.runs = 0

    async def run(self, progress: Progress | None = None) -> SyncReport:
        self.runs += 1
        if self.runs == 1:
            raise SourceUnavailableError("lago down")
        return SyncReport(subscriptions=10, repaired=self.runs, removed=0, seconds=0.0)


async def test_a_failed_run_is_tried_again_and_repairs_are_counted() -> None:
    loader, repaired = Loader(), list[int]()
    reconciler = Reconciler(loader.run, 0.01, repaired.append)
    task = asyncio.create_task(reconciler.run())

    async def two_counted() -> bool:
        return len(repaired) >= 2

    try:
        await eventually_async(two_counted, what="two reconciliations after a failed one")
    finally:
        task.cancel()
    assert repaired[:2] == [2, 3]  # the first run failed and counted nothing
    state = reconciler.state()
    assert state["cycles"] >= 2 and state["cycle_seconds"] is not None and state["cycle_seconds"] >= 0


async def test_a_cycle_longer_than_the_interval_is_followed_at_once_and_a_short_one_waits() -> None:
    starts: list[float] = []

    async def cycle() -> SyncReport:
        starts.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.15 if len(starts) == 1 else 0.0)
        return SyncReport(subscriptions=1, repaired=0, removed=0, seconds=0.0)

    task = asyncio.create_task(Reconciler(cycle, 0.1, lambda _: None).run())

    async def three() -> bool:
        return len(starts) >= 3

    try:
        await eventually_async(three, what="three cycles")
    finally:
        task.cancel()
    assert starts[1] - starts[0] < 0.24  # ran over its interval: the next began at once, not 0.1 s after it ended
    assert starts[2] - starts[1] >= 0.1 - 0.01  # the second was short: the third waited for the interval


async def test_a_reader_waits_for_the_first_complete_load() -> None:
    meta = MemoryMapMeta()
    waiting = asyncio.create_task(first_load(meta, poll_seconds=0.01))

    async def still_waiting() -> bool:
        return not waiting.done()

    await holds_for_async(still_waiting, 0.1, what="waiting while no load is recorded")
    await meta.finish_load(await meta.begin_load(), 1_000)
    await asyncio.wait_for(waiting, 5)
