"""The failure policy answers before the caller's deadline: reads inside a call are bounded by it."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from tests.integration.conftest import stub
from tests.support.processes import RedisServer, rpc_error, start_sidecar
from tests.support.wait import eventually

pytestmark = pytest.mark.integration

COLD = pb.CheckEntitlementRequest(subscription_id="sub_globex", feature_code="seats")


def test_a_paused_redis_gets_the_policys_answer_within_a_50_ms_deadline(
    tmp_path: Path, example_catalog: Path, own_redis: RedisServer
) -> None:
    # The Redis timeout stays at its 2 s default: the caller's deadline is what must bound the read.
    args = ["--store", "redis", "--redis-url", own_redis.url, "--failure-policy-features", "seats=fail_open"]
    sidecar = start_sidecar(tmp_path, example_catalog, args)
    try:
        own_redis.pause()
        for _ in range(5):
            started = time.monotonic()
            answer = stub(sidecar).CheckEntitlement(COLD, timeout=0.05)  # raises DEADLINE_EXCEEDED if late
            assert time.monotonic() - started < 0.05
            assert (answer.allowed, answer.reason) == (True, pb.REASON_FAILURE_POLICY)
            assert answer.freshness.source == pb.SOURCE_FALLBACK and answer.freshness.stale
        batch = stub(sidecar).CheckEntitlements(pb.CheckEntitlementsRequest(checks=[COLD, COLD]), timeout=0.05)
        assert [r.response.reason for r in batch.results] == [pb.REASON_FAILURE_POLICY] * 2
        # A full view has no policy answer: it says, in time, why it has none.
        code, details = rpc_error(
            lambda: stub(sidecar).GetEntitlements(pb.GetEntitlementsRequest(subscription_id="sub_globex"), timeout=0.1)
        )
        assert code is grpc.StatusCode.DEADLINE_EXCEEDED and "did not answer within the call's deadline" in details
        own_redis.resume()
        eventually(
            lambda: stub(sidecar).CheckEntitlement(COLD, timeout=1).reason == pb.REASON_ENTITLED,
            what="fresh answers once Redis answers",
        )
    finally:
        own_redis.resume()
        sidecar.terminate()
