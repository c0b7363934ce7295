"""The definitions we derive from Lago's resolved view, re-resolved by our rules, give back Lago's view:
that is what makes local plan/feature fan-out safe. Checked against the emulator's own resolution."""

from __future__ import annotations

import pytest

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
