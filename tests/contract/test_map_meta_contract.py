"""One contract for the map's marker (MapMeta), in memory and on a real Redis and Redis Cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from entitlements_sidecar.domain.ports import MapMeta
from entitlements_sidecar.store.map_meta_memory import MemoryMapMeta
from entitlements_sidecar.store.map_meta_redis import RedisMapMeta
from entitlements_sidecar.store.redis_connection import open_redis
from tests.support.processes import RedisServer
from tests.support.redis_cluster import redis_client


@pytest.fixture(params=["memory", "redis", "cluster"])
async def meta(request: pytest.FixtureRequest, key_prefix: str) -> AsyncIterator[MapMeta]:
    if request.param == "memory":
        yield MemoryMapMeta()
        return
    client = redis_client(request)
    yield RedisMapMeta(client, key_prefix)
    await client.aclose()


async def test_a_load_is_recorded_under_its_epoch(meta: MapMeta) -> None:
    assert await meta.loaded_at() is None
    epoch = await meta.begin_load()
    assert await meta.begin_load() == epoch  # a second load (reconciliation) joins the same epoch
    assert await meta.loaded_at() is None  # begun is not complete
    assert await meta.finish_load(epoch, 1234)
    assert await meta.loaded_at() == 1234
    assert await meta.confirmed_at() == 1234  # a complete load is also a confirmation
    assert await meta.begin_load() == epoch


async def test_a_load_under_another_epoch_is_not_recorded(meta: MapMeta) -> None:
    epoch = await meta.begin_load()
    assert not await meta.finish_load(epoch + "-other", 1234)
    assert await meta.loaded_at() is None


async def test_the_heartbeat_counts_only_on_a_loaded_map(meta: MapMeta) -> None:
    await meta.mark_confirmed(1000)
    assert await meta.confirmed_at() is None  # nothing loaded: a heartbeat would make a lost map look current
    epoch = await meta.begin_load()
    await meta.finish_load(epoch, 1500)
    await meta.mark_confirmed(2000)
    assert await meta.confirmed_at() == 2000
    assert await meta.loaded_at() == 1500  # a heartbeat is not a full load


async def test_a_map_lost_during_its_load_is_not_recorded(redis_server: RedisServer, key_prefix: str) -> None:
    client = open_redis(redis_server.url, 5.0)
    meta = RedisMapMeta(client, key_prefix)
    epoch = await meta.begin_load()
    redis_server.client().delete(f"{key_prefix}meta")  # what a Redis restarted empty looks like to this key
    assert not await meta.finish_load(epoch, 1234)
    assert await meta.loaded_at() is None
    assert await meta.begin_load() != epoch  # the next load starts a new epoch
    await client.aclose()


async def test_a_load_in_another_key_layout_does_not_count(redis_server: RedisServer, key_prefix: str) -> None:
    # What a syncer of layout 1 left: its load must not stop this one from loading the new keys.
    redis_server.client().hset(f"{key_prefix}meta", "loaded_at", "1234")
    client = open_redis(redis_server.url, 5.0)
    meta = RedisMapMeta(client, key_prefix)
    assert await meta.loaded_at() is None
    assert await meta.finish_load(await meta.begin_load(), 5678)
    assert await meta.loaded_at() == 5678
    await client.aclose()
