"""L1 behaviour beyond the store contract: feed loss and recovery, bounds, and the fill race."""

from __future__ import annotations

from collections.abc import Callable

from entitlements_sidecar.domain.composition import PlanFeatures
from entitlements_sidecar.domain.model import PlanDefinition
from entitlements_sidecar.domain.ports import Change, ChangeKind, ChangeListener
from entitlements_sidecar.store.cached import ENTRY_BYTES, CachedStore
from entitlements_sidecar.store.memory import MemoryStore
from tests.support.builders import FEATURES, PRO, STARTER, own, seed


class FeedStore(MemoryStore):
    """A memory store whose change feed the test can break and restore."""

    def emit(self, change: Change) -> None:
        self._listeners.emit(change)


async def make(max_entries: int = 100, max_bytes: int = 1 << 40) -> tuple[FeedStore, CachedStore]:
    inner = FeedStore()
    cached = CachedStore(inner, max_entries, max_bytes)
    await cached.start()
    await seed(inner)
    await inner.put_subscription(own("s1"))
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
        await inner.put_subscription(own(name))
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
            await inner.put_subscription(own("s1", plan=STARTER))
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
    await seed(cached)
    for name in ("a", "b", "c"):
        await cached.put_subscription(own(name, customer="acme"))
    listed = await cached.get_customer("acme")
    assert listed is not None and listed.subscription_ids == ("a", "b", "c")
    inner.held = []  # from here on, the feed is late
    await cached.put_subscription(own("b", customer="globex"))
    moved = await cached.get_customer("acme")
    assert moved is not None and moved.subscription_ids == ("a", "c")
    await cached.delete_subscription("c")  # never read on its own, so only the customer's listing knows it
    deleted = await cached.get_customer("acme")
    assert deleted is not None and deleted.subscription_ids == ("a",)
    assert inner.held, "the notifications were indeed held back"


async def test_answers_on_one_plan_share_its_features_and_own_rows_add_only_theirs() -> None:
    inner, cached = await make()
    await inner.put_subscription(own("s2"))
    await inner.put_subscription(own("s3", entitlements={"seats": {"max": 99}}))
    one, two, three = await cached.get_subscriptions(["s1", "s2", "s3"])
    assert one is not None and two is not None and three is not None
    assert isinstance(one.subscription.features, PlanFeatures)
    assert one.subscription.features is two.subscription.features  # one mapping for the plan
    assert not isinstance(three.subscription.features, PlanFeatures)
    assert three.subscription.features["sso"] is one.subscription.features["sso"]  # what it does not change
    assert three.subscription.features["seats"].privileges["max"].value == 99


async def test_a_plan_change_is_seen_by_every_cached_answer_on_it_and_no_other() -> None:
    inner, cached = await make()
    await inner.put_subscription(own("s2", plan=STARTER))
    await cached.get_subscriptions(["s1", "s2"])
    misses = cached.misses
    await inner.put_plan(PlanDefinition("pro", {"seats": {"max": 12, "root": True}}))  # one write
    pro, starter = await cached.get_subscriptions(["s1", "s2"])
    assert pro is not None and pro.subscription.features["seats"].privileges["max"].value == 12
    assert "sso" not in pro.subscription.features
    assert starter is not None and starter.subscription.features["seats"].privileges["max"].value == 3
    assert cached.misses == misses + 1  # only the answer on the changed plan was read again


async def test_a_catalog_change_is_seen_by_every_cached_answer() -> None:
    inner, cached = await make()
    await inner.put_subscription(own("s2", plan=STARTER))
    await cached.get_subscriptions(["s1", "s2"])
    await inner.put_features({code: f for code, f in FEATURES.items() if code != "seats"})
    for record in await cached.get_subscriptions(["s1", "s2"]):
        assert record is not None and "seats" not in record.subscription.features


async def test_byte_bound_evicts_the_least_recently_used_and_counts_what_is_held() -> None:
    inner, cached = await make(max_bytes=3 * (ENTRY_BYTES + 20))
    for name in ("a", "b", "c", "d"):
        await inner.put_subscription(own(name))
        await cached.get_subscription(name)
    assert len(cached) == 3 and 0 < cached.bytes <= 3 * (ENTRY_BYTES + 20)
    misses = cached.misses
    await cached.get_subscription("a")  # the oldest went first
    assert cached.misses == misses + 1
    inner.emit(Change(ChangeKind.FEED_RESET))
    assert cached.bytes == 0


async def test_an_answer_version_grows_with_its_plans_and_the_catalogs() -> None:
    inner, cached = await make()
    first = await cached.get_subscription("s1")
    await inner.put_plan(PlanDefinition("pro", {"seats": {"max": 11}}))
    second = await cached.get_subscription("s1")
    await inner.put_features(dict(FEATURES))  # unchanged: no new version
    third = await cached.get_subscription("s1")
    await inner.put_plan(PRO)
    await inner.put_subscription(own("s1", plan=STARTER))  # moved to a plan written earlier
    fourth = await cached.get_subscription("s1")
    assert first is not None and second is not None and third is not None and fourth is not None
    assert first.version < second.version == third.version < fourth.version
