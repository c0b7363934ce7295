"""Lago changes -> signed webhooks -> a running sidecar answers Lago's new state (real sockets, Redis)."""

from __future__ import annotations

import itertools

import pytest

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from tests.integration.lago.conftest import SyncerFactory, seed
from tests.integration.lago.views import lago_view, matches, sidecar_view, version_of
from tests.lago_emulator.models import Webhook
from tests.lago_emulator.server import LagoEmulator
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


def subscription_reads(lago: LagoEmulator, external_id: str) -> list[tuple[float, str, str]]:
    return [r for r in lago.controls.api_requests() if r[2] == f"/api/v1/subscriptions/{external_id}"]


def test_cold_start_loads_lago_state(lago: LagoEmulator, start_syncer: SyncerFactory) -> None:
    seed(lago, subscriptions=3)
    syncer = start_syncer()
    for index in range(3):
        assert matches(lago, syncer.sidecar, f"sub_{index}")
    assert sidecar_view(syncer.sidecar, "sub_0")[1]["seats"] == {"max": 10, "root": True}


@pytest.mark.parametrize("algorithm", ["hmac", "jwt"])
def test_override_patch_reaches_checks_with_a_higher_version(
    lago: LagoEmulator, start_syncer: SyncerFactory, algorithm: str
) -> None:
    seed(lago)
    syncer = start_syncer()
    stub = pb_grpc.EntitlementServiceStub(syncer.sidecar.channel)
    request = pb.CheckEntitlementRequest(subscription_id="sub_0", feature_code="seats", privilege_code="max")
    before = stub.CheckEntitlement(request, timeout=5)
    assert before.value.int_value == 10
    lago.state.patch_subscription_entitlements("sub_0", {"seats": {"max": 25}})
    assert lago.flush(algorithm) == [200]
    eventually(lambda: stub.CheckEntitlement(request, timeout=5).value.int_value == 25, what="override applied")
    after = stub.CheckEntitlement(request, timeout=5)
    assert after.freshness.version > before.freshness.version
    assert "subscription applied" in syncer.sidecar.log() and "subscription.updated" in syncer.sidecar.log()


@pytest.mark.parametrize("order", list(itertools.permutations(range(2))))
def test_upgrade_in_any_delivery_order_ends_in_lagos_state(
    lago: LagoEmulator, start_syncer: SyncerFactory, order: tuple[int, ...]
) -> None:
    seed(lago)
    lago.state.create_plan("enterprise", amount_cents=9000)
    lago.state.write_plan_entitlements("enterprise", {"seats": {"max": 500, "root": True}}, replace=True)
    lago.state.patch_subscription_entitlements("sub_0", {"seats": {"max": 42}})
    lago.take_outbox()
    syncer = start_syncer()
    assert sidecar_view(syncer.sidecar, "sub_0")[1]["seats"]["max"] == 42
    lago.state.create_subscription("sub_0", "cust_0", "enterprise")  # upgrade: new row, overrides dropped
    webhooks = lago.take_outbox()
    assert [w.webhook_type for w in webhooks] == ["subscription.terminated", "subscription.started"]
    lago.deliver([webhooks[i] for i in order])
    eventually(lambda: matches(lago, syncer.sidecar, "sub_0"), what="upgrade applied")
    assert sidecar_view(syncer.sidecar, "sub_0") == ("active", {"seats": {"max": 500, "root": True}})
    # The old row's termination arriving late (as a new delivery) is re-read and changes nothing.
    version = version_of(syncer.sidecar, "sub_0")
    reads = len(subscription_reads(lago, "sub_0"))
    lago.deliver([Webhook(webhooks[0].webhook_type, "subscription", webhooks[0].payload)])
    eventually(lambda: len(subscription_reads(lago, "sub_0")) > reads, what="late termination re-read")
    assert sidecar_view(syncer.sidecar, "sub_0") == ("active", {"seats": {"max": 500, "root": True}})
    assert version_of(syncer.sidecar, "sub_0") == version


def test_pending_downgrade_then_applied(lago: LagoEmulator, start_syncer: SyncerFactory) -> None:
    seed(lago)
    syncer = start_syncer()
    lago.state.create_subscription("sub_0", "cust_0", "starter")  # downgrade: pending row, current stays
    reads = len(subscription_reads(lago, "sub_0"))
    lago.flush()
    # The end state equals the state before: wait for the webhook's re-read, or "still on pro" proves nothing.
    eventually(lambda: len(subscription_reads(lago, "sub_0")) > reads, what="the downgrade webhook re-read")
    eventually(lambda: matches(lago, syncer.sidecar, "sub_0"), what="still on pro")
    assert sidecar_view(syncer.sidecar, "sub_0")[1]["seats"]["max"] == 10
    lago.state.apply_pending_downgrade("sub_0")
    lago.flush()
    eventually(lambda: sidecar_view(syncer.sidecar, "sub_0")[1].get("seats", {}).get("max") == 3, what="downgraded")
    assert matches(lago, syncer.sidecar, "sub_0")


def test_termination_and_cancellation(lago: LagoEmulator, start_syncer: SyncerFactory) -> None:
    seed(lago)
    syncer = start_syncer()
    lago.state.terminate("sub_0")
    lago.state.create_subscription("sub_1", "cust_1", "starter")  # a pending downgrade of sub_1 ...
    lago.state.terminate("sub_1", status="pending")  # ... canceled through DELETE ?status=pending
    reads = len(subscription_reads(lago, "sub_1"))
    lago.flush()
    eventually(lambda: sidecar_view(syncer.sidecar, "sub_0") == ("terminated", {}), what="termination")
    # sub_1 ends where it began (active on pro): only its re-read shows the cancellation was processed.
    eventually(lambda: len(subscription_reads(lago, "sub_1")) > reads, what="the cancellation re-read")
    eventually(lambda: matches(lago, syncer.sidecar, "sub_1"), what="cancellation")
    stub = pb_grpc.EntitlementServiceStub(syncer.sidecar.channel)
    answer = stub.CheckEntitlement(pb.CheckEntitlementRequest(subscription_id="sub_0", feature_code="sso"), timeout=5)
    assert (answer.allowed, answer.reason) == (False, pb.REASON_SUBSCRIPTION_NOT_ACTIVE)
    assert lago_view(lago, "sub_1")[0] == "active"


def test_subscription_only_feature_then_feature_deleted(lago: LagoEmulator, start_syncer: SyncerFactory) -> None:
    seed(lago)
    lago.state.create_feature("beta", [{"code": "level", "value_type": "integer"}])
    lago.take_outbox()
    syncer = start_syncer()
    lago.state.patch_subscription_entitlements("sub_0", {"beta": {"level": 2}})
    lago.flush()
    eventually(lambda: sidecar_view(syncer.sidecar, "sub_0")[1].get("beta") == {"level": 2}, what="addition")
    lago.state.delete_feature("beta")  # only feature.deleted: no plan or subscription webhook
    assert [w.webhook_type for w in lago.state.outbox] == ["feature.deleted"]
    lago.flush()
    eventually(lambda: "beta" not in sidecar_view(syncer.sidecar, "sub_0")[1], what="feature deleted")
    assert matches(lago, syncer.sidecar, "sub_0")


def test_privilege_removal_and_feature_removal(lago: LagoEmulator, start_syncer: SyncerFactory) -> None:
    seed(lago)
    syncer = start_syncer()
    lago.state.remove_subscription_privilege("sub_0", "seats", "root")
    lago.state.remove_subscription_feature("sub_1", "sso")
    lago.flush()
    eventually(lambda: "root" not in sidecar_view(syncer.sidecar, "sub_0")[1]["seats"], what="privilege removed")
    eventually(lambda: "sso" not in sidecar_view(syncer.sidecar, "sub_1")[1], what="feature removed")
    assert matches(lago, syncer.sidecar, "sub_0") and matches(lago, syncer.sidecar, "sub_1")
    # a later plan change is re-resolved locally and keeps both removals
    lago.state.write_plan_entitlements("pro", {"seats": {"max": 11, "root": True}, "sso": {"provider": "okta"}}, False)
    lago.flush()
    eventually(lambda: sidecar_view(syncer.sidecar, "sub_0")[1]["seats"]["max"] == 11, what="plan change")
    assert matches(lago, syncer.sidecar, "sub_0") and matches(lago, syncer.sidecar, "sub_1")


def test_feature_privilege_deleted(lago: LagoEmulator, start_syncer: SyncerFactory) -> None:
    seed(lago)
    syncer = start_syncer()
    lago.state.delete_privilege("seats", "root")
    lago.flush()
    eventually(lambda: "root" not in sidecar_view(syncer.sidecar, "sub_0")[1]["seats"], what="privilege deleted")
    assert matches(lago, syncer.sidecar, "sub_0")


def test_removals_outlive_the_plan_losing_and_regaining_what_they_remove(
    lago: LagoEmulator, start_syncer: SyncerFactory
) -> None:
    seed(lago)
    syncer = start_syncer()
    lago.state.remove_subscription_feature("sub_0", "sso")
    lago.state.remove_subscription_privilege("sub_0", "seats", "root")
    assert lago.flush() == [200, 200]
    # The plan loses both; while it lacks them, Lago's view of sub_0 cannot show that the removals exist ...
    lago.state.write_plan_entitlements("pro", {"seats": {"max": 10}, "analytics.api": {}}, replace=True)
    lago.state.patch_subscription_entitlements("sub_0", {"seats": {"max": 20}})  # ... and sub_0 is re-read then
    assert lago.flush() == [200, 200]
    eventually(lambda: sidecar_view(syncer.sidecar, "sub_0")[1].get("seats") == {"max": 20}, what="sub_0 re-read")
    # The plan regains them: Lago applies the removals again, so only sub_1 gets them back.
    lago.state.write_plan_entitlements("pro", {"seats": {"root": True}, "sso": {"provider": "google"}}, replace=False)
    assert lago.flush() == [200]
    eventually(lambda: "sso" in sidecar_view(syncer.sidecar, "sub_1")[1], what="the plan change applied")
    assert lago_view(lago, "sub_0")[1] == {"seats": {"max": 20}, "analytics.api": {}}
    assert matches(lago, syncer.sidecar, "sub_0") and matches(lago, syncer.sidecar, "sub_1")
    # An upgrade is a new row in Lago and starts without the old row's removals.
    lago.state.create_plan("enterprise", amount_cents=9000)
    lago.state.write_plan_entitlements("enterprise", {"sso": {"provider": "okta"}}, replace=True)
    lago.state.create_subscription("sub_0", "cust_0", "enterprise")
    assert set(lago.flush()) == {200}  # plan.created and .updated, then terminated and started
    eventually(lambda: matches(lago, syncer.sidecar, "sub_0"), what="the upgraded row")
    assert sidecar_view(syncer.sidecar, "sub_0")[1] == {"sso": {"provider": "okta"}}
