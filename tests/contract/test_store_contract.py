"""One contract for every EntitlementStore: in-memory, Redis (real redis-server), a real 3-master Redis
Cluster, and the L1 cache wrapped around each. `other` writes the same data "from elsewhere": through the
inner store for memory, through a second RedisStore (as another process would) for Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from entitlements_sidecar.domain.model import PlanDefinition
from entitlements_sidecar.domain.ports import Change, ChangeKind, EntitlementStore, Origin, PutResult
from entitlements_sidecar.store.cached import CachedStore
from entitlements_sidecar.store.memory import MemoryStore
from entitlements_sidecar.store.redis_store import RedisStore
from tests.support.builders import FEATURES, PRO, STARTER, own, seed, subscription
from tests.support.processes import RedisServer
from tests.support.redis_cluster import RedisClusterNodes
from tests.support.wait import eventually_async


@dataclass
class Stores:
    store: EntitlementStore
    other: EntitlementStore
    cached: bool


@pytest.fixture(params=["memory", "redis", "cluster", "cached-memory", "cached-redis", "cached-cluster"])
async def stores(request: pytest.FixtureRequest, key_prefix: str) -> AsyncIterator[Stores]:
    kind: str = request.param
    if kind.endswith("memory"):
        inner: EntitlementStore = MemoryStore()
        other: EntitlementStore = inner
    elif kind.endswith("cluster"):
        nodes: RedisClusterNodes = request.getfixturevalue("redis_cluster")
        inner, other = RedisStore(nodes.async_client(), key_prefix), RedisStore(nodes.async_client(), key_prefix)
        await other.start()
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        inner = RedisStore.from_url(server.url, key_prefix)
        other = RedisStore.from_url(server.url, key_prefix)
        await other.start()
    store: EntitlementStore = CachedStore(inner, 1000) if kind.startswith("cached") else inner
    await store.start()
    await seed(store)
    yield Stores(store, other, kind.startswith("cached"))
    await store.close()
    if other is not inner:
        await other.close()


async def test_unknown_subjects_are_none(stores: Stores) -> None:
    assert await stores.store.get_subscription("nope") is None
    assert await stores.store.get_customer("nobody") is None
    assert await stores.store.delete_subscription("nope") is None
    assert await stores.store.definition("nope") is None
    assert await stores.store.plan("nope") is None


async def test_put_then_get_answers_the_composition(stores: Stores) -> None:
    mine = own("s1", entitlements={"seats": {"max": 25}}, removed_features=frozenset({"sso"}))
    version = await stores.store.put_subscription(mine)
    assert version > 0
    record = await stores.store.get_subscription("s1")
    assert record is not None
    assert record.subscription == subscription(
        "s1", entitlements={"seats": {"max": 25}}, removed_features=frozenset({"sso"})
    )
    assert record.version >= version
    assert record.synced_at.year >= 2026
    assert await stores.store.definition("s1") == mine


async def test_plans_and_the_catalog_round_trip(stores: Stores) -> None:
    assert await stores.store.plan("pro") == PRO
    assert await stores.store.features() == FEATURES
    first = await stores.store.put_plan(PRO)
    assert await stores.store.put_plan(PRO) == first  # unchanged: same version


async def test_unchanged_write_keeps_version_and_changed_write_bumps_it(stores: Stores) -> None:
    first = await stores.store.put_subscription(own("s1"))
    assert await stores.store.put_subscription(own("s1")) == first
    assert await stores.store.put_subscription(own("s1", entitlements={"seats": {"max": 2}})) > first


async def test_versions_never_go_backwards_across_delete(stores: Stores) -> None:
    first = await stores.store.put_subscription(own("s1"))
    second = await stores.store.put_subscription(own("s1", plan=STARTER))
    tombstone = await stores.store.delete_subscription("s1")
    assert tombstone is not None and first < second < tombstone
    assert await stores.store.get_subscription("s1") is None
    assert await stores.store.put_subscription(own("s1")) > tombstone


async def test_a_plan_write_changes_every_answer_on_it_and_raises_their_versions(stores: Stores) -> None:
    await stores.store.put_subscriptions(
        [own("a"), own("b", entitlements={"seats": {"max": 40}}), own("c", plan=STARTER)]
    )
    before = {r.subscription.external_id: r for r in await stores.store.get_subscriptions(["a", "b", "c"]) if r}
    await stores.other.put_plan(PlanDefinition("pro", {"seats": {"max": 12, "root": True}, "api": {}}))

    async def moved() -> bool:
        a, b, c = await stores.store.get_subscriptions(["a", "b", "c"])
        return (
            a is not None and a.subscription.features["seats"].privileges["max"].value == 12
            and "sso" not in a.subscription.features
            and b is not None and b.subscription.features["seats"].privileges["max"].plan_value == 12
            and b.subscription.features["seats"].privileges["max"].value == 40
            and c is not None and c.version == before["c"].version  # another plan: untouched
        )  # fmt: skip

    await eventually_async(moved, timeout=5, what="answers composed with the new plan")
    a, b, _ = await stores.store.get_subscriptions(["a", "b", "c"])
    assert a is not None and b is not None
    assert a.version > before["a"].version and b.version > before["b"].version


async def test_a_catalog_write_changes_every_answer(stores: Stores) -> None:
    await stores.store.put_subscriptions([own("a"), own("c", plan=STARTER)])
    await stores.other.put_features({code: f for code, f in FEATURES.items() if code != "seats"})

    async def dropped() -> bool:
        records = await stores.store.get_subscriptions(["a", "c"])
        return all(r is not None and "seats" not in r.subscription.features for r in records)

    await eventually_async(dropped, timeout=5, what="answers composed with the new catalog")


async def test_a_move_to_an_older_plan_still_raises_the_version(stores: Stores) -> None:
    await stores.store.put_subscription(own("s1", plan=STARTER))
    await stores.store.put_plan(PlanDefinition("starter", {"seats": {"max": 4}}))  # newer than pro's version
    before = await stores.store.get_subscription("s1", min_version=1 << 62)
    await stores.store.put_subscription(own("s1"))
    after = await stores.store.get_subscription("s1", min_version=1 << 62)
    assert before is not None and after is not None and after.version > before.version


async def test_an_older_read_never_replaces_or_resurrects_a_later_one(stores: Stores) -> None:
    [written] = await stores.store.put_subscriptions([own("s1", entitlements={"seats": {"max": 5}})], observed_ms=2000)
    [older] = await stores.store.put_subscriptions([own("s1", entitlements={"seats": {"max": 1}})], observed_ms=1000)
    assert older.superseded and not older.changed and older.version == written.version
    record = await stores.store.get_subscription("s1", min_version=1 << 62)
    assert record is not None and record.subscription.features["seats"].privileges["max"].value == 5
    assert await stores.store.delete_subscription("s1", observed_ms=1500) is None  # older than the write
    assert await stores.store.delete_subscription("s1", observed_ms=3000) is not None
    [late] = await stores.store.put_subscriptions([own("s1")], observed_ms=2500)
    assert late.superseded
    assert await stores.store.get_subscription("s1", min_version=1 << 62) is None
    assert await stores.store.subscription_ids() == set()
    assert await stores.store.get_customer("acme", min_version=1 << 62) is None


async def test_customer_index_tracks_membership_and_versions(stores: Stores) -> None:
    await stores.store.put_subscription(own("a", customer="acme"))
    await stores.store.put_subscription(own("b", customer="acme"))
    customer = await stores.store.get_customer("acme")
    assert customer is not None
    assert customer.subscription_ids == ("a", "b")
    first = customer.version
    await stores.store.put_subscription(own("b", customer="acme", plan=STARTER))
    customer = await stores.store.get_customer("acme")
    assert customer is not None and customer.version > first
    # moving a subscription to another customer updates both
    await stores.store.put_subscription(own("b", customer="globex"))
    acme, globex = await stores.store.get_customer("acme"), await stores.store.get_customer("globex")
    assert acme is not None and acme.subscription_ids == ("a",)
    assert globex is not None and globex.subscription_ids == ("b",)
    await stores.store.delete_subscription("a")
    assert await stores.store.get_customer("acme") is None


async def test_batch_read_keeps_order_and_reports_missing(stores: Stores) -> None:
    await stores.store.put_subscription(own("a"))
    await stores.store.put_subscription(own("c"))
    records = await stores.store.get_subscriptions(["c", "missing", "a"])
    assert [r.subscription.external_id if r else None for r in records] == ["c", None, "a"]
    assert await stores.store.get_subscriptions([]) == []


async def test_subscription_ids_lists_live_ones(stores: Stores) -> None:
    for name in ("a", "b", "c"):
        await stores.store.put_subscription(own(name))
    await stores.store.delete_subscription("b")
    assert await stores.store.subscription_ids() == {"a", "c"}


async def test_listeners_hear_subscription_customer_and_plan_changes(stores: Stores) -> None:
    heard: list[Change] = []
    remove = stores.store.add_listener(heard.append)
    version = await stores.other.put_subscription(own("s1", customer="acme"))
    plan_version = await stores.other.put_plan(PlanDefinition("pro", {"api": {}}))

    async def all_three() -> bool:
        kinds = {(c.kind, c.id, c.version) for c in heard}
        return (
            (ChangeKind.SUBSCRIPTION, "s1", version) in kinds
            and any(c.kind is ChangeKind.CUSTOMER and c.id == "acme" for c in heard)
            and (ChangeKind.PLAN, "pro", plan_version) in kinds
        )

    await eventually_async(all_three, timeout=5, what="change notifications")
    remove()
    heard.clear()
    await stores.other.put_subscription(own("s1", customer="acme", plan=STARTER))
    # after removal nothing more arrives; confirm via a second listener that the change did happen
    seen: list[Change] = []
    stores.store.add_listener(seen.append)
    await stores.other.put_subscription(own("s1", customer="acme"))
    await eventually_async(lambda: _has(seen, "s1"), timeout=5, what="second listener")
    assert not [c for c in heard if c.kind is ChangeKind.SUBSCRIPTION]


async def _has(changes: list[Change], sub_id: str) -> bool:
    return any(c.kind is ChangeKind.SUBSCRIPTION and c.id == sub_id for c in changes)


async def test_writes_from_elsewhere_become_visible(stores: Stores) -> None:
    await stores.store.put_subscription(own("s1"))
    warm = await stores.store.get_subscription("s1")  # fills an L1, where there is one
    assert warm is not None
    assert await stores.store.get_customer("acme") is not None
    await stores.other.put_subscription(own("s1", entitlements={"seats": {"max": 99}}))

    async def updated() -> bool:
        record = await stores.store.get_subscription("s1")
        return record is not None and record.subscription.features["seats"].privileges["max"].value == 99

    await eventually_async(updated, timeout=5, what="invalidated read")
    await stores.other.delete_subscription("s1")

    async def gone() -> bool:
        return await stores.store.get_subscription("s1") is None and await stores.store.get_customer("acme") is None

    await eventually_async(gone, timeout=5, what="deletion visible")


async def test_cached_reads_come_from_memory_and_min_version_reads_through(stores: Stores) -> None:
    await stores.store.put_subscription(own("s1"))
    first = await stores.store.get_subscription("s1")
    assert first is not None
    if stores.cached:
        # Our own write's notification may still be in flight and evict once; then reads are hits.
        async def from_memory() -> bool:
            record = await stores.store.get_subscription("s1")
            return record is not None and record.origin is Origin.MEMORY

        await eventually_async(from_memory, timeout=5, what="an L1 hit")
        assert isinstance(stores.store, CachedStore) and stores.store.hits >= 1
    fresh = await stores.store.get_subscription("s1", min_version=first.version)
    assert fresh is not None and fresh.version == first.version
    misses = stores.store.misses if isinstance(stores.store, CachedStore) else 0
    newer = await stores.store.get_subscription("s1", min_version=first.version + 5)  # newer than cached: read through
    assert newer is not None and newer.version == first.version  # nothing newer exists, so the stored record
    if isinstance(stores.store, CachedStore):
        assert stores.store.misses == misses + 1, "a min_version above the cached version was served from the L1"
        inner_is_redis = isinstance(stores.other, RedisStore)
        assert newer.origin is (Origin.REDIS if inner_is_redis else Origin.MEMORY)


async def test_batch_writes_report_versions_and_changes(stores: Stores) -> None:
    assert await stores.store.put_subscriptions([]) == []
    first = await stores.store.put_subscriptions([own("a"), own("b", customer="globex")])
    assert [r.changed for r in first] == [True, True]
    again = await stores.store.put_subscriptions([own("a"), own("b", customer="globex", plan=STARTER)])
    assert [(r.version == f.version, r.changed) for r, f in zip(again, first, strict=True)] == [
        (True, False),
        (False, True),
    ]
    assert again[1].version > first[1].version
    record = await stores.store.get_subscription("b")
    assert record is not None and record.subscription.plan_code == "starter"
    globex = await stores.store.get_customer("globex")
    assert globex is not None and globex.subscription_ids == ("b",)


async def test_a_provisional_write_fills_only_a_gap_and_is_flagged_until_a_full_one(stores: Stores) -> None:
    written = await stores.store.put_subscription(own("kept", entitlements={"seats": {"max": 40}}))
    results = await stores.store.put_subscriptions([own("kept"), own("new")], provisional=True)
    assert [r.changed for r in results] == [False, True]
    assert results[0] == PutResult(written, False, False)  # the kept entry's own version, not superseded
    [older] = await stores.store.put_subscriptions([own("kept")], observed_ms=1, provisional=True)
    assert older == PutResult(written, False, True)  # a listing older than what is stored: superseded
    kept, new = await stores.store.get_subscriptions(["kept", "new"])
    assert kept is not None and not kept.stale and kept.subscription.features["seats"].privileges["max"].value == 40
    assert new is not None and new.stale and new.subscription == subscription("new")  # its plan's answer
    [part] = await stores.store.own_parts(["new"])
    assert part is not None and part.provisional
    [confirmed] = await stores.store.put_subscriptions([own("new")])  # its own read: same rows, not provisional
    assert confirmed.changed
    record = await stores.store.get_subscription("new", min_version=confirmed.version)
    assert record is not None and not record.stale


async def test_an_id_walk_lists_every_live_id_once_and_resumes_from_its_cursor(stores: Stores) -> None:
    names = [f"w{n:02d}" for n in range(30)]
    await stores.store.put_subscriptions([own(name) for name in names])
    await stores.store.delete_subscription("w05")
    seen: list[str] = []
    cursor = 0
    while True:
        cursor, ids = await stores.store.id_page(cursor, 7)
        seen += ids
        if cursor == 0:
            break
    assert set(seen) == set(names) - {"w05"}
    parts = await stores.store.own_parts(["w01", "w05", "nope"])
    assert parts[0] is not None and parts[0].definition == own("w01") and parts[0].observed_ms > 0
    assert parts[1:] == [None, None]


async def test_a_walk_resumed_from_a_saved_cursor_lists_every_id_live_throughout(stores: Stores) -> None:
    names = [f"r{n:03d}" for n in range(300)]
    await stores.store.put_subscriptions([own(name) for name in names])
    cursor, seen = await stores.store.id_page(0, 40)
    assert cursor != 0  # not done after one page of "about 40"
    await stores.store.put_subscriptions([own("late")])  # listed or not: it was not live throughout
    await stores.store.delete_subscription("r007")
    while cursor:
        cursor, ids = await stores.store.id_page(cursor, 40)
        seen += ids
    assert set(seen) - {"late", "r007"} == set(names) - {"r007"}
