"""The Kubernetes topology in small: a reader-only sidecar and a syncer-only process on one Redis."""

from __future__ import annotations

from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from tests.integration.lago.conftest import SyncerFactory, seed
from tests.lago_emulator.server import LagoEmulator
from tests.support.processes import Sidecar, free_port, start_sidecar
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


def log_says_serving(sidecar: Sidecar) -> bool:
    return " serving " in sidecar.log()


def test_reader_waits_for_the_syncers_first_load_then_follows_its_writes(
    lago: LagoEmulator, start_syncer: SyncerFactory
) -> None:
    seed(lago)
    reader = start_syncer(roles="reader", name="reader", ready=lambda s: s.health() >= 0).sidecar
    assert reader.health() == health_pb2.HealthCheckResponse.NOT_SERVING  # nothing loaded yet
    syncer = start_syncer(roles="syncer", name="syncer-only", ready=log_says_serving)
    assert "grpc=-" in syncer.sidecar.log()  # the syncer serves no gRPC
    eventually(lambda: reader.health() == health_pb2.HealthCheckResponse.SERVING, what="reader ready")

    stub = pb_grpc.EntitlementServiceStub(reader.channel)
    request = pb.CheckEntitlementRequest(customer_id="cust_0", feature_code="seats", privilege_code="max")
    assert stub.CheckEntitlement(request, timeout=5).value.int_value == 10
    lago.state.patch_subscription_entitlements("sub_0", {"seats": {"max": 31}})
    assert lago.flush() == [200]
    eventually(lambda: stub.CheckEntitlement(request, timeout=5).value.int_value == 31, what="reader sees the write")


def test_fully_consistent_read_on_a_reader_goes_to_lago(lago: LagoEmulator, start_syncer: SyncerFactory) -> None:
    seed(lago)
    syncer = start_syncer()
    lago.state.patch_subscription_entitlements("sub_1", {"seats": {"max": 99}})
    lago.take_outbox()  # no webhook: only a read-through can know
    stub = pb_grpc.EntitlementServiceStub(syncer.sidecar.channel)
    request = pb.CheckEntitlementRequest(
        subscription_id="sub_1", feature_code="seats", privilege_code="max",
        consistency=pb.Consistency(fully_consistent=True),
    )  # fmt: skip
    answer = stub.CheckEntitlement(request, timeout=5)
    assert (answer.value.int_value, answer.freshness.source) == (99, pb.SOURCE_SOURCE)
    cached = stub.CheckEntitlement(
        pb.CheckEntitlementRequest(subscription_id="sub_1", feature_code="seats", privilege_code="max"), timeout=5
    )
    assert cached.value.int_value == 99  # and it was stored for everyone


def test_a_syncer_on_a_warm_redis_is_ready_without_a_full_load(lago: LagoEmulator, start_syncer: SyncerFactory) -> None:
    seed(lago)
    first = start_syncer(name="first")
    eventually(lambda: "full sync done" in first.sidecar.log(), what="the first load's reads done")
    assert first.sidecar.terminate() == 0
    requests = len(lago.controls.api_requests())
    second = start_syncer(name="second")
    assert "full sync done" not in second.sidecar.log()
    assert len(lago.controls.api_requests()) == requests  # ready from what Redis already holds
    stub = pb_grpc.EntitlementServiceStub(second.sidecar.channel)
    answer = stub.CheckEntitlement(pb.CheckEntitlementRequest(subscription_id="sub_0", feature_code="sso"), timeout=5)
    assert answer.allowed


def test_embedded_mode_syncs_from_lago_without_redis(lago: LagoEmulator, tmp_path: Path) -> None:
    """One process, in-memory store and queue: for trying the Lago sync out on a laptop."""
    seed(lago)
    http_port = free_port()
    args = ["--source", "lago", "--store", "memory", "--http-address", f"127.0.0.1:{http_port}",
            "--lago-api-url", lago.url]  # fmt: skip
    env = {"ENTITLEMENTS_LAGO_API_KEY": lago.api_key, "ENTITLEMENTS_LAGO_HMAC_KEY": lago.signer.hmac_key}
    sidecar = start_sidecar(tmp_path, None, args, env=env, name="embedded")
    try:
        lago.webhook_url = f"http://127.0.0.1:{http_port}/webhooks/lago"
        stub = pb_grpc.EntitlementServiceStub(sidecar.channel)
        request = pb.CheckEntitlementRequest(subscription_id="sub_1", feature_code="seats", privilege_code="max")
        assert stub.CheckEntitlement(request, timeout=5).value.int_value == 10
        lago.state.patch_subscription_entitlements("sub_1", {"seats": {"max": 8}})
        assert lago.flush() == [
            200,
        ]
        eventually(lambda: stub.CheckEntitlement(request, timeout=5).value.int_value == 8, what="applied")
    finally:
        sidecar.terminate()
