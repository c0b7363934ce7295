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
    task = asyncio.create_task(Reconciler(loader, 0.01, repaired.append).run())

    async def two_counted() -> bool:
        return len(repaired) >= 2

    try:
        await eventually_async(two_counted, what="two reconciliations after a failed one")
    finally:
        task.cancel()
    assert repaired[:2] == [2, 3]  # the first run failed and counted nothing


async def test_a_reader_waits_for_the_first_complete_load() -> None:
    meta = MemoryMapMeta()
    waiting = asyncio.create_task(first_load(meta, poll_seconds=0.01))

    async def still_waiting() -> bool:
        return not waiting.done()

    await holds_for_async(still_waiting, 0.1, what="waiting while no load is recorded")
    await meta.finish_load(await meta.begin_load(), 1_000)
    await asyncio.wait_for(waiting, 5)
