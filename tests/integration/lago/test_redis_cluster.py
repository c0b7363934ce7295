"""The Kubernetes topology on a real 3-master Redis Cluster: a syncer-only process and a reader-only sidecar,
both given ENTITLEMENTS_REDIS_CLUSTER_NODES; Lago's webhooks reach the reader's answers."""

from __future__ import annotations

import pytest
from grpc_health.v1 import health_pb2

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from tests.integration.lago.conftest import SyncerFactory, seed
from tests.lago_emulator.server import LagoEmulator
from tests.support.redis_cluster import RedisClusterNodes
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_args(redis_cluster: RedisClusterNodes) -> list[str]:
    return ["--redis-url", redis_cluster.url, "--redis-cluster-nodes", redis_cluster.seeds]


def seats(stub: pb_grpc.EntitlementServiceStub, subscription_id: str = "", customer_id: str = "") -> int:
    request = pb.CheckEntitlementRequest(
        subscription_id=subscription_id, customer_id=customer_id, feature_code="seats", privilege_code="max"
    )
    return int(stub.CheckEntitlement(request, timeout=5).value.int_value)


def test_webhooks_reach_a_reader_through_a_redis_cluster(
    lago: LagoEmulator, start_syncer: SyncerFactory, redis_cluster: RedisClusterNodes
) -> None:
    seed(lago, subscriptions=12)
    before = redis_cluster.keys_per_node()
    start_syncer(roles="syncer", name="syncer-only", ready=lambda s: " serving " in s.log())
    reader = start_syncer(roles="reader", name="reader", ready=lambda s: s.health() >= 0).sidecar
    eventually(lambda: reader.health() == health_pb2.HealthCheckResponse.SERVING, what="reader ready")
    grown = [after - prior for after, prior in zip(redis_cluster.keys_per_node(), before, strict=True)]
    assert all(count > 0 for count in grown), f"every master holds part of the map: {grown}"

    stub = pb_grpc.EntitlementServiceStub(reader.channel)
    assert seats(stub, subscription_id="sub_3") == 10 and seats(stub, customer_id="cust_1") == 10
    # A subscription webhook: the syncer re-reads it from Lago and the reader's L1 hears of it.
    lago.state.patch_subscription_entitlements("sub_3", {"seats": {"max": 40}})
    assert lago.flush() == [200]
    eventually(lambda: seats(stub, subscription_id="sub_3") == 40, what="override reached the reader")
    eventually(lambda: seats(stub, customer_id="cust_1") == 40, what="customer cust_1 merges it")
    # A plan webhook: every subscription on the plan, in every slot, is re-resolved locally.
    lago.state.write_plan_entitlements("pro", {"seats": {"max": 12}}, replace=False)
    assert set(lago.flush()) == {200}
    for index in (0, 1, 2, 4, 11):
        eventually(lambda i=index: seats(stub, subscription_id=f"sub_{i}") == 12, what=f"plan change on sub_{index}")  # type: ignore[misc]
    assert seats(stub, subscription_id="sub_3") == 40  # its override still wins
