"""Full sync and reconciliation on the memory store with an in-process Lago."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest

from entitlements_sidecar.domain.errors import SourceUnavailableError
from entitlements_sidecar.domain.ports import LATEST
from entitlements_sidecar.sources.lago.full_sync import FullSync
from entitlements_sidecar.sources.lago.refresher import Refresher
from entitlements_sidecar.store.checkpoint_memory import MemoryCheckpoints
from entitlements_sidecar.store.map_meta_memory import MemoryMapMeta
from entitlements_sidecar.store.memory import MemoryStore
from tests.support.fake_lago import FakeLago


def ticking() -> Callable[[], int]:
    """A clock that moves on at every reading, so runs one right after another are told apart."""
    return itertools.count(1_800_000_000_000).__next__


def sync_for(
    lago: FakeLago, store: MemoryStore, meta: MemoryMapMeta, checkpoints: MemoryCheckpoints, **options: int
) -> FullSync:
    clock = ticking()
    return FullSync(lago, store, Refresher(lago, store, clock), meta, checkpoints, clock_ms=clock, **options)


def build(lago: FakeLago) -> tuple[FullSync, MemoryStore, MemoryMapMeta]:
    store, meta = MemoryStore(), MemoryMapMeta()
    return sync_for(lago, store, meta, MemoryCheckpoints(), concurrency=2), store, meta


def lago_with(count: int) -> FakeLago:
    lago = FakeLago()
    lago.add_plan("pro", seats=10)
    for i in range(count):
        lago.subscribe(f"sub_{i}", f"cus_{i % 3}", "pro")
    return lago


async def test_a_first_load_fills_an_empty_store_and_records_it_complete() -> None:
    lago = lago_with(7)
    sync, store, meta = build(lago)
    progress: list[tuple[int, int]] = []
    report = await sync.run(lambda done, total: progress.append((done, total)))
    assert (report.subscriptions, report.repaired, report.removed, report.recorded) == (7, 0, 0, True)
    assert await store.subscription_ids() == {f"sub_{i}" for i in range(7)}
    assert await meta.loaded_at() is not None
    assert progress[-1] == (7, 7)
    assert lago.asked["plan"] == 1  # one request per plan, not per subscription


async def test_reconciliation_repairs_what_a_missed_webhook_left_wrong_and_removes_what_is_gone() -> None:
    lago = lago_with(4)
    sync, store, _ = build(lago)
    await sync.run()
    lago.subscribe("sub_1", "cus_1", "pro", override=99)  # changed in Lago, webhook never came
    del lago.subscriptions["sub_3"]  # gone from Lago
    report = await sync.run()
    assert (report.repaired, report.removed) == (2, 1)
    record = await store.get_subscription("sub_1", LATEST)
    assert record is not None and record.subscription.features["seats"].privileges["max"].value == 99
    assert await store.get_subscription("sub_3", LATEST) is None


async def test_a_load_during_which_the_store_lost_the_map_is_not_recorded_complete() -> None:
    class LosingMeta(MemoryMapMeta):
        """A marker whose store restarted empty while the load ran: a new epoch began meanwhile."""

        async def finish_load(self, epoch: str, at_ms: int) -> bool:
            self._epoch = None
            await self.begin_load()
            return await super().finish_load(epoch, at_ms)

    lago = lago_with(3)
    store, meta = MemoryStore(), LosingMeta()
    report = await FullSync(lago, store, Refresher(lago, store), meta, MemoryCheckpoints()).run()
    assert report.recorded is False and await meta.loaded_at() is None


class Interrupted(FakeLago):
    """A Lago that fails once, at a chosen request: as a syncer killed there would stop."""

    fail_page: int | None = None
    fail_reads_after: int | None = None
    reads: int = 0
    pages: list[int]

    async def subscription_page(
        self, statuses: Sequence[str], page: int, per_page: int = 100
    ) -> tuple[list[dict[str, Any]], int | None, int | None]:
        self.pages.append(page)
        if page == self.fail_page:
            self.fail_page = None
            raise SourceUnavailableError("lago went away")
        return await super().subscription_page(statuses, page, per_page)

    async def get_subscription(self, external_id: str, status: str | None = None) -> dict[str, object] | None:
        await asyncio.sleep(0)  # a request takes a while: what fails stops the others
        self.reads += 1
        if self.fail_reads_after is not None and self.reads > self.fail_reads_after:
            self.fail_reads_after = None
            raise SourceUnavailableError("lago went away")
        return await super().get_subscription(external_id, status)


def interrupted(count: int) -> Interrupted:
    lago = Interrupted()
    lago.pages = []
    lago.add_plan("pro", seats=10)
    for i in range(count):
        lago.subscribe(f"sub_{i:03d}", f"cus_{i}", "pro", override=50 if i == 7 else None)
    return lago


async def test_the_listing_gives_every_subscription_its_plan_answer_flagged_until_its_own_read() -> None:
    lago = interrupted(12)
    lago.fail_reads_after = 3
    store, meta, checkpoints = MemoryStore(), MemoryMapMeta(), MemoryCheckpoints()
    sync = sync_for(lago, store, meta, checkpoints, concurrency=1, per_page=5)
    with pytest.raises(SourceUnavailableError):
        await sync.run()
    assert sync.listed.is_set() and await meta.loaded_at() is not None  # readers may start
    records = await store.get_subscriptions([f"sub_{i:03d}" for i in range(12)])
    assert all(r is not None for r in records)
    provisional = [r for r in records if r is not None and r.stale]
    assert 0 < len(provisional) < 12  # some read, the rest flagged
    assert all(r.subscription.features["seats"].privileges["max"].value == 10 for r in provisional)
    checkpoint = await checkpoints.read()
    assert checkpoint is not None and checkpoint.phase == "detail"
    listed, reads = len(lago.pages), lago.reads
    report = await sync.run()  # resumed: the listing is not walked again, what was read is not read again
    assert report.recorded and len(lago.pages) == listed
    assert lago.reads - reads <= 12 - 3
    final = await store.get_subscriptions([f"sub_{i:03d}" for i in range(12)])
    assert all(r is not None and not r.stale for r in final)
    assert final[7] is not None and final[7].subscription.features["seats"].privileges["max"].value == 50
    assert await checkpoints.read() is None


async def test_a_sync_killed_in_its_listing_resumes_at_the_page_it_was_on() -> None:
    lago = interrupted(23)
    lago.fail_page = 3
    store, meta, checkpoints = MemoryStore(), MemoryMapMeta(), MemoryCheckpoints()
    sync = sync_for(lago, store, meta, checkpoints, per_page=5)
    with pytest.raises(SourceUnavailableError):
        await sync.run()
    assert not sync.listed.is_set() and await meta.loaded_at() is None
    await sync.run()
    assert lago.pages == [1, 2, 3, 3, 4, 5]
    assert await store.subscription_ids() == {f"sub_{i:03d}" for i in range(23)}
    assert lago.reads == 23  # each one read once


async def test_a_checkpoint_of_a_map_that_was_lost_since_is_not_resumed() -> None:
    lago = interrupted(6)
    lago.fail_reads_after = 1
    store, meta, checkpoints = MemoryStore(), MemoryMapMeta(), MemoryCheckpoints()
    sync = sync_for(lago, store, meta, checkpoints, per_page=5)
    with pytest.raises(SourceUnavailableError):
        await sync.run()
    checkpoint = await checkpoints.read()
    assert checkpoint is not None
    await checkpoints.write(replace(checkpoint, epoch="of a map lost since"))
    await sync.run()
    assert lago.pages == [1, 2, 1, 2]  # listed again from the start
