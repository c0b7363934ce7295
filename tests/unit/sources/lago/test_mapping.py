"""The definitions we derive from Lago's resolved view, re-resolved by our rules, give back Lago's view:
that is what makes local plan/feature fan-out safe. Checked against the emulator's own resolution."""

from __future__ import annotations

import pytest

from entitlements_sidecar.domain.model import FeatureDefinition, PlanDefinition
from entitlements_sidecar.domain.resolution import resolve_subscription
from entitlements_sidecar.sources.lago import mapping
from tests.lago_emulator.state import LagoState


def organization() -> LagoState:
    state = LagoState()
    state.create_feature("seats", [{"code": "max", "value_type": "integer"}, {"code": "root", "value_type": "boolean"}])
    state.create_feature("sso", [{"code": "provider", "value_type": "select", "config": {"select_options": ["g", "o"]}},
                                 {"code": "domain"}])  # fmt: skip
    state.create_feature("api")
    state.create_feature("beta", [{"code": "level", "value_type": "integer"}])
    state.create_plan("pro", 5000)
    state.write_plan_entitlements(
        "pro", {"seats": {"max": 10, "root": True}, "sso": {"provider": "g"}, "api": {}}, True
    )
    state.create_subscription("s", "c", "pro")
    return state


SCENARIOS = {
    "plan only": [],
    "override": [("patch", {"seats": {"max": 25}})],
    "override equal to plan": [("patch", {"seats": {"max": 10}})],
    "reset to plan": [("patch", {"seats": {"max": 25}}), ("patch", {"seats": {"max": 10, "root": True}})],
    "addition with values": [("patch", {"beta": {"level": 3}})],
    "pure-gate addition": [("patch", {"beta": {}})],
    "privilege added to a plan feature": [("patch", {"sso": {"domain": "x.io"}})],
    "feature removal": [("remove_feature", "sso")],
    "privilege removal": [("remove_privilege", ("seats", "root"))],
    "removal then restore by patch": [("remove_feature", "sso"), ("patch", {"sso": {"provider": "o"}})],
}


@pytest.mark.parametrize("steps", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_derived_definition_resolves_to_lagos_view(steps: list[tuple[str, object]]) -> None:
    state = organization()
    for action, argument in steps:
        if action == "patch":
            state.patch_subscription_entitlements("s", argument)  # type: ignore[arg-type]
        elif action == "remove_feature":
            state.remove_subscription_feature("s", argument)  # type: ignore[arg-type]
        else:
            state.remove_subscription_privilege("s", *argument)  # type: ignore[misc]
    raw = state.subscription_json(state.find_row("s"), True)
    plan = mapping.plan_definition("pro", state.plan_entitlements("pro"))
    features = {
        f["code"]: mapping.feature_definition(f) for f in (state.feature_json(x) for x in state.features.values())
    }
    definition = mapping.subscription_definition(raw, plan)
    assert resolve_subscription(definition, plan, features) == mapping.resolved_subscription(raw)

    # and after a plan change, local re-resolution equals what Lago then answers
    state.write_plan_entitlements("pro", {"seats": {"max": 12, "root": False}, "sso": {"provider": "o"}}, True)
    new_plan = mapping.plan_definition("pro", state.plan_entitlements("pro"))
    after = mapping.resolved_subscription(state.subscription_json(state.find_row("s"), True))
    assert resolve_subscription(definition, new_plan, features) == after


def _plan_and_features(state: LagoState) -> tuple[PlanDefinition, dict[str, FeatureDefinition]]:
    plan = mapping.plan_definition("pro", state.plan_entitlements("pro"))
    features = {f.code: mapping.feature_definition(state.feature_json(f)) for f in state.features.values()}
    return plan, features


def test_removals_are_kept_while_the_plan_lacks_what_they_remove() -> None:
    state = organization()
    state.remove_subscription_feature("s", "sso")
    state.remove_subscription_privilege("s", "seats", "root")
    plan, _ = _plan_and_features(state)
    seen = mapping.subscription_definition(state.subscription_json(state.find_row("s"), True), plan)
    assert (seen.removed_features, seen.removed_privileges) == (frozenset({"sso"}), {"seats": frozenset({"root"})})

    state.write_plan_entitlements("pro", {"seats": {"max": 10}, "api": {}}, True)  # the plan loses both
    lacking, features = _plan_and_features(state)
    raw = state.subscription_json(state.find_row("s"), True)
    kept = mapping.subscription_definition(raw, lacking, seen)
    forgot = mapping.subscription_definition(raw, lacking)  # what the view alone shows
    assert (kept.removed_features, kept.removed_privileges) == (frozenset({"sso"}), {"seats": frozenset({"root"})})
    assert (forgot.removed_features, forgot.removed_privileges) == (frozenset(), {})

    state.write_plan_entitlements("pro", {"seats": {"root": True}, "sso": {"provider": "g"}}, False)  # regained
    regained, _ = _plan_and_features(state)
    lagos = mapping.resolved_subscription(state.subscription_json(state.find_row("s"), True))
    assert resolve_subscription(kept, regained, features) == lagos
    assert resolve_subscription(forgot, regained, features) != lagos


def test_a_removal_is_forgotten_once_the_view_shows_the_feature_again() -> None:
    state = organization()
    state.remove_subscription_feature("s", "sso")
    plan, _ = _plan_and_features(state)
    seen = mapping.subscription_definition(state.subscription_json(state.find_row("s"), True), plan)
    state.patch_subscription_entitlements("s", {"sso": {"provider": "o"}})  # PATCH restores it
    after = mapping.subscription_definition(state.subscription_json(state.find_row("s"), True), plan, seen)
    assert after.removed_features == frozenset()


def test_another_row_of_the_same_id_does_not_inherit_removals() -> None:
    state = organization()
    state.remove_subscription_feature("s", "sso")
    plan, _ = _plan_and_features(state)
    seen = mapping.subscription_definition(state.subscription_json(state.find_row("s"), True), plan)
    state.write_plan_entitlements("pro", {"seats": {"max": 10}}, True)
    lacking, _ = _plan_and_features(state)
    raw = {**state.subscription_json(state.find_row("s"), True), "lago_id": "another-row"}  # an upgrade's new row
    assert mapping.subscription_definition(raw, lacking, seen).removed_features == frozenset()


def test_billing_comes_from_the_row_and_a_malformed_period_is_left_out() -> None:
    from datetime import UTC, datetime

    from entitlements_sidecar.domain.periods import Billing, BillingTime, Period

    row = {
        "billing_time": "anniversary",
        "current_billing_period_started_at": "2026-11-15T00:00:00Z",
        "current_billing_period_ending_at": "2026-12-14T23:59:59Z",
    }
    period = Period(datetime(2026, 11, 15, tzinfo=UTC), datetime(2026, 12, 14, 23, 59, 59, tzinfo=UTC))
    assert mapping.billing(row) == Billing(BillingTime.ANNIVERSARY, period)
    assert mapping.billing({**row, "current_billing_period_ending_at": "soon"}) == Billing(BillingTime.ANNIVERSARY)
    assert mapping.billing({"current_billing_period_started_at": None}) == Billing()  # not active: no period
