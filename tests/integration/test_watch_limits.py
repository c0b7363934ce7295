"""Watch streams each hold a server thread, so their number is bounded and a cancelled stream frees its slot."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from tests.integration.conftest import stub
from tests.support.processes import rpc_error, start_sidecar
from tests.support.wait import eventually

pytestmark = pytest.mark.integration

WATCH_ACME = pb.WatchEntitlementsRequest(subjects=[pb.Subject(customer_id="acme")])


def test_watch_streams_over_the_limit_are_refused_until_one_ends(tmp_path: Path, example_catalog: Path) -> None:
    sidecar = start_sidecar(tmp_path, example_catalog, ["--max-watch-streams", "1", "--grpc-threads", "1"])
    try:
        first = stub(sidecar).WatchEntitlements(WATCH_ACME, timeout=30)
        assert next(first).initial
        second = stub(sidecar).WatchEntitlements(WATCH_ACME, timeout=5)
        code, details = rpc_error(lambda: next(second))
        assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "streams (limit 1)" in details
        # With one unary thread, a check is answered only if the open stream is not holding it.
        answer = stub(sidecar).CheckEntitlement(
            pb.CheckEntitlementRequest(subscription_id="sub_acme_main", feature_code="sso"), timeout=5
        )
        assert answer.allowed

        first.cancel()  # the client goes away: its slot is freed on the server

        def third_is_accepted() -> bool:
            third = stub(sidecar).WatchEntitlements(WATCH_ACME, timeout=5)
            try:
                return bool(next(third).initial)
            except grpc.RpcError as error:
                if error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                    return False
                raise
            finally:
                third.cancel()

        eventually(third_is_accepted, timeout=10, what="the cancelled stream's slot to be reused")
    finally:
        sidecar.terminate()


def test_requests_over_the_size_limit_are_refused_and_change_nothing(tmp_path: Path, example_catalog: Path) -> None:
    sidecar = start_sidecar(tmp_path, example_catalog, ["--max-request-bytes", "4096"])
    try:
        check = pb.CheckEntitlementRequest(subscription_id="sub_acme_main", feature_code="sso")
        huge = pb.CheckEntitlementsRequest(checks=[check] * 300)  # about 9 KiB
        code, details = rpc_error(lambda: stub(sidecar).CheckEntitlements(huge, timeout=5))
        assert code is grpc.StatusCode.RESOURCE_EXHAUSTED and "4096" in details
        assert stub(sidecar).CheckEntitlement(check, timeout=5).allowed  # still serving, same answers
    finally:
        sidecar.terminate()
