"""Memory: Redis bytes per subscription for a 10-feature map (the resolved map alone, and with what a
Lago syncer keeps besides it for each subscription: its definition hash and its entries in the id and
on-plan sets), and a reader sidecar's resident memory with 100,000 subscriptions in its L1 (and the
answer cache filled for one question each)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aioredis

from entitlements_sidecar.domain.model import (
    ResolvedFeature,
    ResolvedPrivilege,
    ResolvedSubscription,
    SubscriptionDefinition,
    SubscriptionStatus,
    ValueType,
)
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from entitlements_sidecar.store.map_meta_redis import RedisMapMeta
from entitlements_sidecar.store.redis_store import RedisStore
from entitlements_sidecar.store.sync_state_redis import RedisSyncState
from tests.support.processes import RedisServer, start_sidecar


def ten_features(index: int) -> ResolvedSubscription:
    features = {}
    for f in range(10):
        privileges = {
            "max": ResolvedPrivilege("max", ValueType.INTEGER, 10 + f, "Maximum", 10, False),
            "enabled": ResolvedPrivilege("enabled", ValueType.BOOLEAN, True, "Enabled", True, False),
            "tier": ResolvedPrivilege("tier", ValueType.SELECT, "gold", "Tier", "gold", False, ("silver", "gold")),
        }
        features[f"feature_{f}"] = ResolvedFeature(f"feature_{f}", f"Feature {f}", None, privileges)
    return ResolvedSubscription(
        f"sub_{index:06d}",
        f"cust_{index // 2:06d}",
        "pro",
        SubscriptionStatus.ACTIVE,
        datetime(2026, 8, 1, tzinfo=UTC),
        features,
    )


def definition(index: int) -> SubscriptionDefinition:
    """What the syncer keeps for a subscription on a plan: its own rows (here one override)."""
    return SubscriptionDefinition(
        f"sub_{index:06d}",
        f"cust_{index // 2:06d}",
        "pro",
        SubscriptionStatus.ACTIVE,
        datetime(2026, 8, 1, tzinfo=UTC),
        {"feature_3": {"max": 13}},
    )


async def fill(redis: RedisServer, prefix: str, count: int) -> tuple[float, float]:
    """Write `count` subscriptions, then the syncer's definitions of them; return Redis bytes per
    subscription (used_memory deltas) for the map alone and for the map with the definitions."""
    client = aioredis.Redis.from_url(redis.url)
    store, state = RedisStore(client, prefix), RedisSyncState(client, prefix)
    before = int((await client.info("memory"))["used_memory"])
    for start in range(0, count, 1000):
        await store.put_subscriptions([ten_features(i) for i in range(start, min(count, start + 1000))])
    after_map = int((await client.info("memory"))["used_memory"])
    observed = int(time.time() * 1000)
    for start in range(0, count, 50):  # 50 at a time: within the client's connection pool
        await asyncio.gather(*(state.put_definition(definition(i), observed) for i in range(start, start + 50)))
    after_definitions = int((await client.info("memory"))["used_memory"])
    meta = RedisMapMeta(client, prefix)  # what a syncer would record: lets a reader-only sidecar be ready
    await meta.finish_load(await meta.begin_load(), int(time.time() * 1000))
    await client.aclose()
    return (after_map - before) / count, (after_definitions - before) / count


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def measure(redis: RedisServer, count: int = 100_000) -> dict[str, float]:
    prefix = "memory-bench:"
    bytes_per_subscription, with_definitions = asyncio.run(fill(redis, prefix, count))
    tmp = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    args = [
        "--source",
        "lago",
        "--roles",
        "reader",
        "--store",
        "redis",
        "--redis-url",
        redis.url,
        "--redis-key-prefix",
        prefix,
        "--l1-max-entries",
        str(2 * count),
        "--log-level",
        "warning",
    ]
    sidecar = start_sidecar(tmp, None, args, name="reader", timeout=120)
    try:
        idle = rss_kib(sidecar.process.pid)
        stub = pb_grpc.EntitlementServiceStub(sidecar.channel)
        for start in range(0, count, 1000):
            checks = [
                pb.CheckEntitlementRequest(
                    subscription_id=f"sub_{i:06d}", feature_code="feature_3", privilege_code="max"
                )
                for i in range(start, start + 1000)
            ]
            for _ in range(2):  # the second pass is served from L1 and fills the answer cache
                results = stub.CheckEntitlements(pb.CheckEntitlementsRequest(checks=checks), timeout=60).results
                refused = [r for r in results if not r.response.allowed]
                if refused:  # the figure would be of a map that is not all there: say what was answered
                    raise SystemExit(
                        f"memory bench: {len(refused)} of {len(results)} checks denied, first: {refused[0]}"
                    )
        full = rss_kib(sidecar.process.pid)
    finally:
        sidecar.terminate()
    return {
        "redis_bytes_per_subscription": bytes_per_subscription,
        "redis_bytes_per_subscription_with_definitions": with_definitions,
        "sidecar_rss_idle_mib": idle / 1024,
        "sidecar_rss_with_l1_mib": full / 1024,
        "subscriptions": count,
    }
