"""MapWatch keeps MapStatus true from the map's marker and the store's change feed (no sockets)."""

from __future__ import annotations

from entitlements_sidecar.domain.errors import StoreUnavailableError
from entitlements_sidecar.domain.map_status import MapStatus
from entitlements_sidecar.domain.ports import Change, ChangeKind, MapState
from entitlements_sidecar.store.map_meta_memory import MemoryMapMeta
from entitlements_sidecar.store.memory import MemoryStore
from entitlements_sidecar.sync.map_watch import LOST, MapWatch


class LosableMeta(MemoryMapMeta):
    """A marker that can be lost (what a Redis restarted empty does) or unreachable."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = False
        self.down = False

    async def read(self) -> MapState:
        if self.down:
            raise StoreUnavailableError("redis down")
        return MapState(None, None) if self.lost else await super().read()


async def test_complete_once_loaded_doubted_when_lost_and_complete_again() -> None:
    meta, status, store = LosableMeta(), MapStatus(), MemoryStore()
    watch = MapWatch(meta, status, store)
    await watch.check()
    assert not status.complete and status.detail == LOST
    await meta.finish_load(await meta.begin_load(), 1)
    await watch.check()
    assert status.complete
    meta.lost = True
    await watch.check()
    assert not status.complete and "lost (Redis restarted empty or was flushed?)" in status.detail
    status.progress = "being rebuilt from the source: 3 of 10 subscriptions"
    assert status.detail.endswith("; being rebuilt from the source: 3 of 10 subscriptions")
    meta.lost = False
    await watch.check()
    assert status.complete and status.detail == ""


async def test_a_broken_change_feed_doubts_the_map_until_the_marker_is_read_again() -> None:
    meta, status, store = LosableMeta(), MapStatus(), MemoryStore()
    watch = MapWatch(meta, status, store)
    await meta.finish_load(await meta.begin_load(), 1)
    await watch.check()
    store._listeners.emit(Change(ChangeKind.FEED_LOST))
    assert not status.complete and "change feed was interrupted" in status.detail
    store._listeners.emit(Change(ChangeKind.FEED_RESET))
    await watch.check()
    assert status.complete


async def test_an_unreachable_store_changes_nothing() -> None:
    meta, status, store = LosableMeta(), MapStatus(), MemoryStore()
    watch = MapWatch(meta, status, store)
    await meta.finish_load(await meta.begin_load(), 1)
    await watch.check()
    meta.down = True
    await watch.check()
    assert status.complete  # reads fail too, and are answered by the failure policy
