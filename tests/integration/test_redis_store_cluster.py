"""The Redis store on a real 3-master Redis Cluster: the layout puts one subscription's keys in one slot and
spreads the map over every master; writes interrupted between their per-slot steps are finished by a retry;
readers ignore an index member that belongs to another customer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from entitlements_sidecar.domain.errors import StoreUnavailableError
from entitlements_sidecar.domain.map_status import MapStatus
from entitlements_sidecar.domain.ports import Change, ChangeKind
from entitlements_sidecar.domain.queries import Subject, SubjectKind
from entitlements_sidecar.domain.service import ReadService
from entitlements_sidecar.sources.catalog_source import CatalogSource
from entitlements_sidecar.store.map_meta_memory import MemoryMapMeta
from entitlements_sidecar.store.redis_connection import open_redis
from entitlements_sidecar.store.redis_store import RedisStore
from entitlements_sidecar.sync.catalog_sync import CatalogSync
from tests.support.builders import STARTER, own, seed
from tests.support.processes import free_port
from tests.support.redis_cluster import RedisClusterNodes
from tests.support.wait import eventually_async

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(redis_cluster: RedisClusterNodes, key_prefix: str) -> AsyncIterator[RedisStore]:
    store = RedisStore(redis_cluster.async_client(), key_prefix)
    await store.start()
    yield store
    await store.close()


@pytest.fixture
def raw(redis_cluster: RedisClusterNodes) -> Iterator[redis.RedisCluster]:
    client = redis_cluster.raw()
    yield client
    client.close()


def slot(nodes: RedisClusterNodes, key: str) -> int:
    return int(nodes.client().cluster("KEYSLOT", key))


async def test_a_subscriptions_keys_share_a_slot_and_the_map_spreads_over_every_master(
    redis_cluster: RedisClusterNodes, store: RedisStore, key_prefix: str
) -> None:
    await seed(store)
    before = redis_cluster.keys_per_node()
    for n in range(60):
        await store.put_subscription(own(f"sub.{n}", customer=f"cust-{n % 7}"))
    for name in ("sub.0", "a}b{c", "{x}"):  # braces in an id do not split its keys
        await store.put_subscription(own(name))
        assert slot(redis_cluster, f"{key_prefix}e:{{{name}}}") == slot(redis_cluster, f"{{{name}}}")
        assert (await store.get_subscription(name)) is not None and (await store.definition(name)) is not None
    grown = [after - prior for after, prior in zip(redis_cluster.keys_per_node(), before, strict=True)]
    assert all(count > 10 for count in grown), grown


async def test_a_put_interrupted_before_its_customer_step_is_finished_by_the_retry(
    redis_cluster: RedisClusterNodes, store: RedisStore, raw: redis.RedisCluster, key_prefix: str
) -> None:
    await seed(store)
    await store.put_subscription(own("a", customer="acme"))
    version = await store.put_subscription(own("b", customer="acme"))
    # The state a crash between steps 2 and 3 of b's put leaves: b written, its index entry not counted.
    raw.hset(f"{key_prefix}cu:{{acme}}", "m:b", "0")
    interrupted = await store.get_customer("acme")
    assert interrupted is not None
    heard: list[Change] = []
    store.add_listener(heard.append)
    assert await store.put_subscription(own("b", customer="acme")) == version  # the retry: b is unchanged
    after = await store.get_customer("acme")
    assert after is not None and after.version == interrupted.version + 1 and after.subscription_ids == ("a", "b")

    async def announced() -> bool:
        return (ChangeKind.CUSTOMER, "acme", after.version) in {(c.kind, c.id, c.version) for c in heard}

    await eventually_async(announced, what="the retry's customer notification")
    # A retry of a put that had finished changes and announces nothing.
    await store.put_subscription(own("b", customer="acme"))
    same = await store.get_customer("acme")
    assert same is not None and same.version == after.version


async def test_a_delete_interrupted_before_its_customer_step_is_finished_by_the_retry(
    redis_cluster: RedisClusterNodes, store: RedisStore, raw: redis.RedisCluster, key_prefix: str
) -> None:
    await seed(store)
    await store.put_subscription(own("a", customer="acme"))
    await store.put_subscription(own("b", customer="acme", plan=STARTER))
    tombstone = await store.delete_subscription("b")
    assert tombstone is not None
    # The state a crash after the subscription's step leaves: the index still lists it.
    raw.hset(f"{key_prefix}cu:{{acme}}", "m:b", str(tombstone))
    assert await store.delete_subscription("b") is None  # already gone ...
    customer = await store.get_customer("acme")
    assert customer is not None and customer.subscription_ids == ("a",)  # ... and now unlisted too
    assert await store.subscription_ids() == {"a"}


async def test_a_walk_visits_every_master_and_resumes_from_a_saved_position(
    redis_cluster: RedisClusterNodes, store: RedisStore
) -> None:
    await seed(store)
    names = {f"walk.{n}" for n in range(120)}
    await store.put_subscriptions([own(name) for name in sorted(names)])
    await store.delete_subscription("walk.7")
    seen: list[str] = []
    positions: list[int] = []
    cursor = 0
    while True:
        cursor, ids = await store.id_page(cursor, 10)  # each step from the position alone, as a resumed walk
        seen += ids
        positions.append(cursor)
        if cursor == 0:
            break
    assert set(seen) == names - {"walk.7"}
    assert len({p >> 64 for p in positions[:-1]}) == 3  # the position names each of the 3 masters in turn


async def test_a_customer_read_ignores_a_listed_subscription_of_another_customer(
    redis_cluster: RedisClusterNodes, store: RedisStore, raw: redis.RedisCluster, key_prefix: str, example_catalog: Path
) -> None:
    source = CatalogSource(example_catalog, store)
    await CatalogSync(source, store, MemoryMapMeta()).initial_load()
    service = ReadService(store, source, MapStatus(complete=True))
    # What a move interrupted before its last step leaves: sub_globex still listed under acme.
    raw.hset(f"{key_prefix}cu:{{acme}}", "m:sub_globex", "1")
    view = await service.get(Subject(SubjectKind.CUSTOMER, "acme"))
    assert view.found
    assert sorted(s.subscription.external_id for s in view.subscriptions) == ["sub_acme_eu", "sub_acme_main"]


async def test_scripts_are_sent_again_to_nodes_that_forgot_them(store: RedisStore, raw: redis.RedisCluster) -> None:
    await seed(store)
    first = await store.put_subscriptions([own(f"s{n}") for n in range(20)])
    raw.script_flush()  # as a restarted or newly promoted node would be
    changed = await store.put_subscriptions([own(f"s{n}", plan=STARTER) for n in range(20)])
    assert all(c.changed and c.version > f.version for c, f in zip(changed, first, strict=True))
    assert (await store.delete_subscription("s0") or 0) > changed[0].version


async def test_an_unreachable_cluster_is_reported_as_store_unavailable() -> None:
    # The cluster client's own "cannot connect" is not a RedisError; the store still names it unavailable.
    store = RedisStore(open_redis("redis://127.0.0.1:6379/0", 0.5, cluster_nodes=[("127.0.0.1", free_port())]))
    with pytest.raises(StoreUnavailableError, match="RedisClusterException"):
        await store.start()
    with pytest.raises(StoreUnavailableError):
        await store.get_subscription("a")
    with pytest.raises(StoreUnavailableError):
        await store.put_subscription(own("a"))
    await store.close()
