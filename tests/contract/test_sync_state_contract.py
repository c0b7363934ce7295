"""One contract for the syncer's definition store, in memory and on a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from entitlements_sidecar.domain.model import (
    FeatureDefinition,
    PlanDefinition,
    PrivilegeDefinition,
    ValueType,
)
from entitlements_sidecar.domain.ports import SyncStateStore
from entitlements_sidecar.store.sync_state_memory import MemorySyncState
from entitlements_sidecar.store.sync_state_redis import RedisSyncState
from tests.support.builders import definition
from tests.support.redis_cluster import redis_client


@pytest.fixture(params=["memory", "redis", "cluster"])
async def state(request: pytest.FixtureRequest, key_prefix: str) -> AsyncIterator[SyncStateStore]:
    if request.param == "memory":
        yield MemorySyncState()
        return
    client = redis_client(request)
    yield RedisSyncState(client, key_prefix)
    await client.aclose()


async def test_features_round_trip_and_replace(state: SyncStateStore) -> None:
    seats = FeatureDefinition("seats", "Seats", None, {"max": PrivilegeDefinition("max", ValueType.INTEGER, "Max")})
    sso = FeatureDefinition("sso", None, "d", {"p": PrivilegeDefinition("p", ValueType.SELECT, None, ("a", "b"))})
    await state.replace_features({"seats": seats, "sso": sso})
    assert await state.features() == {"seats": seats, "sso": sso}
    await state.replace_features({"sso": sso})
    assert await state.features() == {"sso": sso}
    await state.replace_features({})
    assert await state.features() == {}


async def test_plans_round_trip(state: SyncStateStore) -> None:
    assert await state.plan("pro") is None
    plan = PlanDefinition("pro", {"seats": {"max": 10, "root": True}, "sso": {"p": "a"}, "api": {}})
    await state.put_plan(plan)
    assert await state.plan("pro") == plan


async def test_definitions_are_ordered_by_observation(state: SyncStateStore) -> None:
    full = definition(
        entitlements={"seats": {"max": 25}, "extra": {}},
        removed_features=frozenset({"api"}),
        removed_privileges={"seats": frozenset({"root"})},
    )
    assert await state.put_definition(full, observed_ms=100)
    assert await state.definition("s1") == full
    assert not await state.put_definition(definition(), observed_ms=99)  # an older read loses
    assert await state.definition("s1") == full
    assert await state.put_definition(definition(plan="starter"), observed_ms=100)
    assert await state.on_plan("pro") == set() and await state.on_plan("starter") == {"s1"}
    assert not await state.delete_definition("s1", observed_ms=50)
    assert await state.delete_definition("s1", observed_ms=200)
    assert await state.definition("s1") is None
    assert not await state.put_definition(definition(), observed_ms=150)  # no resurrection by an old read
    assert await state.definition_ids() == set() and await state.on_plan("starter") == set()


async def test_ids_and_plan_index(state: SyncStateStore) -> None:
    for name, plan in (("a", "pro"), ("b", "pro"), ("c", "starter")):
        await state.put_definition(definition(name, plan), observed_ms=1)
    assert await state.definition_ids() == {"a", "b", "c"}
    assert await state.on_plan("pro") == {"a", "b"}


async def test_bulk_definition_reads(state: SyncStateStore) -> None:
    for name in ("a", "b"):
        await state.put_definition(definition(name), observed_ms=1)
    assert await state.definitions([]) == {}
    found = await state.definitions(["a", "missing", "b"])
    assert set(found) == {"a", "b"} and found["a"] == definition("a")
