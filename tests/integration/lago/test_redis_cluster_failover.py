"""A Redis Cluster master dies (3 masters, a replica each, on loopback): its replica takes over, and a
reader and a syncer follow without restarting: webhooks are applied again, and the reader's change feed,
which was on the dead master, moves to a live node and delivers invalidations again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from grpc_health.v1 import health_pb2

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from tests.integration.lago.conftest import SyncerFactory, seed
from tests.lago_emulator.server import LagoEmulator
from tests.support.redis_cluster import SLOTS, RedisClusterNodes, start_redis_cluster
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster() -> Iterator[RedisClusterNodes]:
    nodes = start_redis_cluster(masters=3, with_replicas=True)
    yield nodes
    nodes.stop()


@pytest.fixture
def redis_args(cluster: RedisClusterNodes) -> list[str]:
    return ["--redis-url", cluster.url, "--redis-cluster-nodes", cluster.seeds, "--redis-timeout-seconds", "0.5"]


def seats(stub: pb_grpc.EntitlementServiceStub, subscription_id: str) -> int:
    request = pb.CheckEntitlementRequest(subscription_id=subscription_id, feature_code="seats", privilege_code="max")
    return int(stub.CheckEntitlement(request, timeout=5).value.int_value)


def source(stub: pb_grpc.EntitlementServiceStub, subscription_id: str) -> int:
    request = pb.CheckEntitlementRequest(subscription_id=subscription_id, feature_code="seats", privilege_code="max")
    return int(stub.CheckEntitlement(request, timeout=5).freshness.source)


def test_reader_and_syncer_follow_a_master_failover(
    lago: LagoEmulator, start_syncer: SyncerFactory, cluster: RedisClusterNodes, key_prefix: str
) -> None:
    seed(lago, subscriptions=12)
    start_syncer(roles="syncer", name="syncer-only", ready=lambda s: " serving " in s.log())
    reader = start_syncer(roles="reader", name="reader", ready=lambda s: s.health() >= 0).sidecar
    eventually(lambda: reader.health() == health_pb2.HealthCheckResponse.SERVING, what="reader ready")
    stub = pb_grpc.EntitlementServiceStub(reader.channel)

    channel = f"{key_prefix}changes"
    # Kill the master that carries the change feeds (so the reader's), and follow a subscription stored on it.
    feeds = [int(cluster.client(i).pubsub_numsub(channel)[0][1]) for i in range(3)]
    dead = feeds.index(max(feeds))
    assert feeds[dead] >= 1, f"the feeds are on a master: {feeds}"
    doomed, replica = cluster.client(dead), cluster.client(dead + 3)
    low, high = SLOTS * dead // 3, SLOTS * (dead + 1) // 3
    keyslots = {f"sub_{i}": int(doomed.cluster("KEYSLOT", f"{key_prefix}s:{{sub_{i}}}")) for i in range(12)}
    target = next(sub for sub, keyslot in keyslots.items() if low <= keyslot < high)
    assert seats(stub, target) == 10
    eventually(lambda: source(stub, target) == pb.SOURCE_MEMORY, what="the value in the reader's L1")

    cluster.processes[dead].kill()
    cluster.processes[dead].wait(timeout=10)
    eventually(lambda: replica.info("replication")["role"] == "master", timeout=30, what="the replica promoted")
    alive = cluster.client((dead + 1) % 3)
    eventually(lambda: alive.cluster("INFO")["cluster_state"] == "ok", timeout=30, what="cluster ok")

    lago.state.patch_subscription_entitlements(target, {"seats": {"max": 41}})
    webhooks = lago.take_outbox()
    # Lago retries a delivery that failed; the syncer may answer 503 while its client finds the new master.
    eventually(lambda: lago.deliver(webhooks) == [200], timeout=20, what="webhook accepted after the failover")
    eventually(lambda: seats(stub, target) == 41, timeout=20, what="the change applied and read on the new master")
    # The reader's L1 holds 41 again; only an invalidation through its moved feed can replace it.
    eventually(lambda: source(stub, target) == pb.SOURCE_MEMORY, what="41 served from the reader's L1")
    lago.state.patch_subscription_entitlements(target, {"seats": {"max": 42}})
    assert lago.flush() == [200]
    eventually(lambda: seats(stub, target) == 42, timeout=20, what="an invalidation through the moved feed")
    others = [i for i in range(6) if i != dead]
    eventually(
        lambda: sum(int(cluster.client(i).pubsub_numsub(channel)[0][1]) for i in others) >= 2,
        what="the syncer's and the reader's feeds both on live nodes",
    )
