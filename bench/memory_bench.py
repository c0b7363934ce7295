"""Memory: Redis bytes per subscription for a 10-feature plan (the factorized map: a subscription stores
its own part, 1 in 20 with an override), and a reader sidecar's resident memory with 100,000 subscriptions
in its L1 (and the answer cache filled for one question each)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aioredis

from entitlements_sidecar.domain.model import (
    FeatureDefinition,
    PlanDefinition,
    PrivilegeDefinition,
    SubscriptionDefinition,
    SubscriptionStatus,
    ValueType,
)
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from entitlements_sidecar.store.map_meta_redis import RedisMapMeta
from entitlements_sidecar.store.redis_store import RedisStore
from tests.support.processes import RedisServer, start_sidecar

FEATURE_COUNT = 10


def catalog() -> dict[str, FeatureDefinition]:
    privileges = {
        "max": PrivilegeDefinition("max", ValueType.INTEGER, "Maximum"),
        "enabled": PrivilegeDefinition("enabled", ValueType.BOOLEAN, "Enabled"),
        "tier": PrivilegeDefinition("tier", ValueType.SELECT, "Tier", ("silver", "gold")),
    }
    return {
        f"feature_{f}": FeatureDefinition(f"feature_{f}", f"Feature {f}", None, privileges)
        for f in range(FEATURE_COUNT)
    }


def plan(code: str = "pro") -> PlanDefinition:
    return PlanDefinition(
        code, {f"feature_{f}": {"max": 10 + f, "enabled": True, "tier": "gold"} for f in range(FEATURE_COUNT)}
    )


def definition(index: int, plan_code: str = "pro") -> SubscriptionDefinition:
    """A subscription's own part on a plan: 1 in 20 overrides one privilege (the scale issue's mix)."""
    return SubscriptionDefinition(
        f"sub_{index:06d}",
        f"cust_{index // 2:06d}",
        plan_code,
        SubscriptionStatus.ACTIVE,
        datetime(2026, 8, 1, tzinfo=UTC),
        {"feature_3": {"max": 13 + index % 7}} if index % 20 == 0 else {},
    )


async def fill(redis: RedisServer, prefix: str, count: int) -> tuple[float, float]:
    """Write the catalog and a plan of 10 features, then `count` subscriptions on it; return Redis bytes per
    subscription (used_memory delta / count). The map is factorized: a syncer keeps nothing besides it
    per subscription, so both figures are that one (the second kept for results files before it)."""
    client = aioredis.Redis.from_url(redis.url)
    store = RedisStore(client, prefix)
    before = int((await client.info("memory"))["used_memory"])
    await store.put_features(catalog())
    await store.put_plan(plan())
    for start in range(0, count, 1000):
        await store.put_subscriptions([definition(i) for i in range(start, min(count, start + 1000))])
    after = int((await client.info("memory"))["used_memory"])
    meta = RedisMapMeta(client, prefix)  # what a syncer would record: lets a reader-only sidecar be ready
    await meta.finish_load(await meta.begin_load(), int(time.time() * 1000))
    await client.aclose()
    return (after - before) / count, (after - before) / count


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
