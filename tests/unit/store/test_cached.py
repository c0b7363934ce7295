"""L1 behaviour beyond the store contract: feed loss and recovery, bounds, and the fill race."""

from __future__ import annotations

from collections.abc import Callable

from entitlements_sidecar.domain.ports import Change, ChangeKind, ChangeListener
from entitlements_sidecar.store.cached import CachedStore
from entitlements_sidecar.store.memory import MemoryStore
from tests.support.builders import STARTER, subscription


class FeedStore(MemoryStore):
    """A memory store whose change feed the test can break and restore."""

    def emit(self, change: Change) -> None:
        self._listeners.emit(change)


async def make(max_entries: int = 100) -> tuple[FeedStore, CachedStore]:
    inner = FeedStore()
    cached = CachedStore(inner, max_entries)
    await cached.start()
    await inner.put_subscription(subscription("s1"))
    return inner, cached


async def test_hits_skip_the_inner_store_and_unknowns_are_cached_too() -> None:
    _, cached = await make()
    await cached.get_subscription("s1")
    await cached.get_subscription("s1")
    await cached.get_subscription("ghost")
    await cached.get_subscription("ghost")
    assert (cached.hits, cached.misses) == (2, 2)


async def test_feed_loss_serves_stale_and_stops_filling_then_reset_clears() -> None:
    inner, cached = await make()
    await cached.get_subscription("s1")
    inner.emit(Change(ChangeKind.FEED_LOST))
    record = await cached.get_subscription("s1")
    assert record is not None and record.stale
    await cached.get_subscription("other")
    await cached.get_subscription("other")
    assert cached.misses == 3  # "other" was not cached while the feed was down
    inner.emit(Change(ChangeKind.FEED_RESET))
    assert len(cached) == 0
    record = await cached.get_subscription("s1")
    assert record is not None and not record.stale


async def test_lru_bound_evicts_least_recently_used() -> None:
    inner, cached = await make(max_entries=2)
    for name in ("a", "b", "c"):
        await inner.put_subscription(subscription(name))
    await cached.get_subscription("a")
    await cached.get_subscription("b")
    await cached.get_subscription("a")  # a is now most recent
    await cached.get_subscription("c")  # evicts b
    assert len(cached) == 2
    misses = cached.misses
    await cached.get_subscription("a")
    assert cached.misses == misses
    await cached.get_subscription("b")
    assert cached.misses == misses + 1


async def test_zero_size_caches_nothing() -> None:
    _, cached = await make(max_entries=0)
    await cached.get_subscription("s1")
    await cached.get_subscription("s1")
    assert cached.hits == 0 and len(cached) == 0


async def test_fill_that_raced_an_invalidation_is_not_kept() -> None:
    inner, cached = await make()

    class Racing(FeedStore):
        async def get_subscription(self, external_id: str, min_version: int = 0):  # type: ignore[no-untyped-def]
            record = await inner.get_subscription(external_id)
            # a change lands while this read is in flight
            await inner.put_subscription(subscription("s1", plan=STARTER))
            return record

    racing = Racing()
    inner.add_listener(lambda change: racing.emit(change))
    cached = CachedStore(racing, 100)
    await cached.start()
    stale = await cached.get_subscription("s1")
    assert stale is not None and stale.subscription.plan_code == "pro"
    assert len(cached) == 0  # the old read was not cached over the newer write


class LateFeedStore(MemoryStore):
    """A memory store whose change notifications arrive only when the test lets them, as over Redis."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[Change] | None = None

    def add_listener(self, listener: ChangeListener) -> Callable[[], None]:
        def late(change: Change) -> None:
            if self.held is not None and change.kind in (ChangeKind.SUBSCRIPTION, ChangeKind.CUSTOMER):
                self.held.append(change)
            else:
                listener(change)

        return super().add_listener(late)


async def test_a_local_move_or_delete_drops_the_old_customer_before_its_notification() -> None:
    inner = LateFeedStore()
    cached = CachedStore(inner, 100)
    await cached.start()
    for name in ("a", "b", "c"):
        await cached.put_subscription(subscription(name, customer="acme"))
    listed = await cached.get_customer("acme")
    assert listed is not None and listed.subscription_ids == ("a", "b", "c")
    inner.held = []  # from here on, the feed is late
    await cached.put_subscription(subscription("b", customer="globex"))
    moved = await cached.get_customer("acme")
    assert moved is not None and moved.subscription_ids == ("a", "c")
    await cached.delete_subscription("c")  # never read on its own, so only the customer's listing knows it
    deleted = await cached.get_customer("acme")
    assert deleted is not None and deleted.subscription_ids == ("a",)
    assert inner.held, "the notifications were indeed held back"
