"""Usage when Redis dies: each meter's failure policy answers, flagged, from a real sidecar process; a
fail-open meter counts in the sidecar and adds it to the shared counter when Redis is back (here it comes
back empty, so the counter is exactly what was counted meanwhile)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from entitlements_sidecar.gen.entitlements.v1 import usage_pb2 as upb
from entitlements_sidecar.gen.entitlements.v1 import usage_pb2_grpc as upb_grpc
from tests.integration.test_usage import CATALOG
from tests.support.processes import RedisServer, Sidecar, start_sidecar
from tests.support.wait import GiveUp, eventually

pytestmark = pytest.mark.integration

FAIL_OPEN = CATALOG.replace(
    "aggregation: sum, property: calls, allowance: calls_included, quota: calls_max}",
    "aggregation: sum, property: calls, allowance: calls_included, quota: calls_max, on_failure: fail_open}",
)


@pytest.fixture
def sidecar(tmp_path: Path, own_redis: RedisServer) -> Iterator[Sidecar]:
    assert FAIL_OPEN != CATALOG
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(FAIL_OPEN)
    args = ["--store", "redis", "--redis-url", own_redis.url, "--redis-timeout-seconds", "0.5"]
    started = start_sidecar(tmp_path, catalog, args)
    yield started
    started.terminate()


def consume(sidecar: Sidecar, feature: str, value: int, transaction_id: str) -> upb.ConsumeUsageResponse:
    request = upb.ConsumeUsageRequest(
        subscription_id="sub_a", feature_code=feature, value=value, transaction_id=transaction_id
    )
    return upb_grpc.UsageServiceStub(sidecar.channel).ConsumeUsage(request, timeout=5)


def test_redis_down_each_meter_answers_by_its_policy_and_fail_open_uses_are_added_back(
    sidecar: Sidecar, own_redis: RedisServer
) -> None:
    assert consume(sidecar, "api", 2, "before").recorded
    own_redis.kill()
    opened = consume(sidecar, "api", 3, "during")
    assert (opened.allowed, opened.reason, opened.recorded, opened.usage.fallback) == (
        True, pb.USAGE_REASON_FAILURE_POLICY, True, True,
    )  # fmt: skip
    closed = consume(sidecar, "llm", 10, "during")  # tokens: fail_closed, the default
    assert (closed.allowed, closed.reason, closed.recorded, closed.usage.fallback) == (
        False, pb.USAGE_REASON_FAILURE_POLICY, False, True,
    )  # fmt: skip
    checked = pb_grpc.EntitlementServiceStub(sidecar.channel).CheckEntitlement(
        pb.CheckEntitlementRequest(subscription_id="sub_a", feature_code="api", requested_usage=1), timeout=5
    )
    assert (checked.allowed, checked.reason, checked.freshness.stale, checked.freshness.source) == (
        True, pb.REASON_FAILURE_POLICY, True, pb.SOURCE_FALLBACK,
    )  # fmt: skip
    with pytest.raises(grpc.RpcError) as caught:  # a fail-closed report: the caller keeps it and retries
        upb_grpc.UsageServiceStub(sidecar.channel).ReportUsage(
            upb.ReportUsageRequest(subscription_id="sub_a", metric_code="tokens", properties={"tokens": "5"},
                                   transaction_id="r1"), timeout=5)  # fmt: skip
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    own_redis.restart()  # back, and empty: only what was counted during the outage can reach it
    client = own_redis.client()
    eventually(lambda: any(True for _ in client.scan_iter("ent:u:*")), timeout=20, what="the spilled use replayed")

    def consumed() -> upb.ConsumeUsageResponse | None:
        try:
            return consume(sidecar, "api", 1, "after")
        except grpc.RpcError as exc:  # the map is reloaded into the empty Redis: UNAVAILABLE, never "not entitled"
            if exc.code() is not grpc.StatusCode.UNAVAILABLE:
                raise GiveUp(f"not UNAVAILABLE while the map reloads: {exc}") from exc
            return None

    after = eventually(consumed, timeout=20, what="a use once the map is back")
    assert after is not None
    assert (after.usage.fallback, after.usage.used) == (False, 3)  # "during" was counted once, in Redis now
