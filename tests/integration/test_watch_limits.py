"""Watch streams each hold a server thread, so their number is bounded and a cancelled stream frees its slot."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from tests.integration.conftest import stub
from tests.support.processes import REPO, rpc_error, start_sidecar
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


_FROZEN_CLIENT = """
import sys, time, grpc
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb, entitlements_pb2_grpc as pb_grpc
stub = pb_grpc.EntitlementServiceStub(grpc.insecure_channel(sys.argv[1]))  # one channel: one connection
held = []
for _ in range(int(sys.argv[2])):
    stream = stub.WatchEntitlements(pb.WatchEntitlementsRequest(subjects=[pb.Subject(customer_id="acme")]))
    try:
        next(stream)
        held.append(stream)
    except grpc.RpcError as error:
        print("refused", error.code().name, flush=True)
print("opened", len(held), flush=True)
time.sleep(600)
"""


def test_a_frozen_client_cannot_hold_every_stream_and_loses_its_own(tmp_path: Path, example_catalog: Path) -> None:
    args = ["--max-watch-streams", "6", "--max-streams-per-connection", "3",
            "--grpc-keepalive-seconds", "1", "--grpc-keepalive-timeout-seconds", "1"]  # fmt: skip
    sidecar = start_sidecar(tmp_path, example_catalog, args)
    frozen = subprocess.Popen(
        [sys.executable, "-c", _FROZEN_CLIENT, sidecar.address, "6"], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert frozen.stdout is not None
    try:
        lines = [frozen.stdout.readline().strip() for _ in range(4)]
        assert lines == ["refused RESOURCE_EXHAUSTED"] * 3 + ["opened 3"]  # its connection's share, no more
        frozen.send_signal(signal.SIGSTOP)  # it holds three streams and answers nothing, pings included
        other = stub(sidecar).WatchEntitlements(WATCH_ACME, timeout=30)
        assert next(other).initial  # the others still get streams
        eventually(lambda: sidecar.open_streams() == 1, timeout=10, what="the frozen client's streams dropped")
    finally:
        frozen.kill()
        frozen.communicate(timeout=10)
        sidecar.terminate()
