"""Lago's answers are checked against what was asked: a listing that ignores its id filter and a read
answered with another subscription's row change nothing but what they truly answer for."""

from __future__ import annotations

import httpx
import pytest

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from tests.integration.lago.conftest import SyncerFactory, seed
from tests.integration.lago.views import lago_view, matches, sidecar_view
from tests.lago_emulator.server import LagoEmulator
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


def _rejected_rows(http_port: int) -> float:
    metrics = httpx.get(f"http://127.0.0.1:{http_port}/metrics", timeout=5).text
    return float(metrics.split("\nentitlements_lago_rows_rejected_total ")[1].split()[0])


def test_a_listing_that_ignores_its_id_filter_terminates_only_the_asked_subscription(
    lago: LagoEmulator, start_syncer: SyncerFactory
) -> None:
    seed(lago)  # sub_0 (cust_0) and sub_1 (cust_1), both on pro
    syncer = start_syncer()
    lago.state.create_subscription("sub_1", "cust_1", "starter")  # a downgrade: sub_1 gets a pending row
    assert lago.flush() == [200]
    lago.controls.ignore_id_filters = True  # from now on, ?external_id= lists every subscription
    lago.state.terminate("sub_0")
    assert lago.flush() == [200]
    # sub_0 has no active row, so its refresh lists rows by external_id: only sub_0's own row may count.
    eventually(lambda: sidecar_view(syncer.sidecar, "sub_0")[0] == "terminated", what="sub_0 terminated")
    assert matches(lago, syncer.sidecar, "sub_0")
    assert lago_view(lago, "sub_1")[0] == "active" and matches(lago, syncer.sidecar, "sub_1")
    stub = pb_grpc.EntitlementServiceStub(syncer.sidecar.channel)
    answer = stub.CheckEntitlement(pb.CheckEntitlementRequest(subscription_id="sub_1", feature_code="sso"), timeout=5)
    assert (answer.allowed, answer.subscription_id) == (True, "sub_1")
    log = syncer.sidecar.log()
    assert "lago listed subscriptions that do not match the filter; ignored" in log
    assert "external_id 'sub_1' (asked 'sub_0')" in log  # both ids named
    assert _rejected_rows(syncer.http_port) >= 1


def test_a_read_answered_with_another_subscriptions_row_is_written_nowhere(
    lago: LagoEmulator, start_syncer: SyncerFactory
) -> None:
    seed(lago)
    syncer = start_syncer("--failure-policy", "fail_closed")
    stub = pb_grpc.EntitlementServiceStub(syncer.sidecar.channel)
    lago.controls.swap_rows = {"sub_0": "sub_1"}  # GET /subscriptions/sub_0 answers sub_1's row
    lago.state.terminate("sub_0")
    [terminated] = lago.take_outbox()  # held back: first, only reads can learn of it

    # A fully consistent check of sub_0 must not answer with sub_1's entitlements.
    consistent = pb.CheckEntitlementRequest(
        subscription_id="sub_0", feature_code="seats", privilege_code="max",
        consistency=pb.Consistency(fully_consistent=True),
    )  # fmt: skip
    answer = stub.CheckEntitlement(consistent, timeout=5)
    assert (answer.allowed, answer.reason, answer.subscription_id) == (False, pb.REASON_FAILURE_POLICY, "")
    assert answer.freshness.source == pb.SOURCE_FALLBACK and answer.freshness.stale
    assert "lago answered another subscription than asked; ignored" in syncer.sidecar.log()

    # sub_0's webhook is acknowledged and skipped, and does not hold up sub_1's behind it.
    lago.state.patch_subscription_entitlements("sub_1", {"seats": {"max": 45}})
    assert lago.deliver([terminated, *lago.take_outbox()]) == [200, 200]
    eventually(lambda: sidecar_view(syncer.sidecar, "sub_1")[1]["seats"]["max"] == 45, what="sub_1's own webhook")
    # Nothing was written for sub_0: neither sub_1's row nor a guess; it stays what Lago last truly said.
    assert sidecar_view(syncer.sidecar, "sub_0") == (
        "active", {"seats": {"max": 10, "root": True}, "sso": {"provider": "google"}, "analytics.api": {}}
    )  # fmt: skip
    lago.controls.swap_rows = {}
    assert stub.CheckEntitlement(consistent, timeout=5).reason == pb.REASON_SUBSCRIPTION_NOT_ACTIVE
    assert _rejected_rows(syncer.http_port) >= 2
