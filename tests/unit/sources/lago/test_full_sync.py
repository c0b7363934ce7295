"""Full sync and reconciliation on the memory store with an in-process Lago."""

from __future__ import annotations

from entitlements_sidecar.domain.ports import LATEST
from entitlements_sidecar.sources.lago.full_sync import FullSync
from entitlements_sidecar.sources.lago.refresher import Refresher
from entitlements_sidecar.store.map_meta_memory import MemoryMapMeta
from entitlements_sidecar.store.memory import MemoryStore
from tests.support.fake_lago import FakeLago


def build(lago: FakeLago) -> tuple[FullSync, MemoryStore, MemoryMapMeta]:
    store, meta = MemoryStore(), MemoryMapMeta()
    return FullSync(lago, store, Refresher(lago, store), meta, concurrency=2), store, meta


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
    report = await FullSync(lago, store, Refresher(lago, store), meta).run()
    assert report.recorded is False and await meta.loaded_at() is None
