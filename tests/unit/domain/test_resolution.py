from __future__ import annotations

from entitlements_sidecar.domain.model import FeatureDefinition, PrivilegeDefinition, ValueType
from entitlements_sidecar.domain.resolution import resolve_subscription
from tests.support.builders import FEATURES, PRO, subscription


def test_plan_values_apply_when_nothing_is_overridden() -> None:
    sub = subscription()
    assert set(sub.features) == {"seats", "sso", "api"}
    max_seats = sub.features["seats"].privileges["max"]
    assert (max_seats.value, max_seats.plan_value, max_seats.overridden) == (10, 10, False)
    assert max_seats.value_type is ValueType.INTEGER


def test_override_wins_over_plan_value() -> None:
    sub = subscription(entitlements={"seats": {"max": 25}, "sso": {"provider": "okta"}})
    max_seats = sub.features["seats"].privileges["max"]
    assert (max_seats.value, max_seats.plan_value, max_seats.overridden) == (25, 10, True)
    assert sub.features["sso"].privileges["provider"].value == "okta"
    assert sub.features["seats"].privileges["root"].overridden is False


def test_override_equal_to_plan_value_is_not_an_override() -> None:
    sub = subscription(entitlements={"seats": {"max": 10}})
    assert sub.features["seats"].privileges["max"].overridden is False


def test_addition_of_feature_and_of_privilege() -> None:
    sub = subscription(entitlements={"sso": {"domain": "acme.io"}})
    domain = sub.features["sso"].privileges["domain"]
    assert (domain.value, domain.plan_value, domain.overridden) == ("acme.io", None, True)
    from tests.support.builders import STARTER

    added = subscription(plan=STARTER, entitlements={"api": {}})
    assert "api" in added.features
    assert added.features["api"].privileges == {}


def test_feature_removal_hides_plan_feature() -> None:
    sub = subscription(removed_features=frozenset({"sso"}))
    assert "sso" not in sub.features


def test_privilege_removal_hides_plan_value_without_falling_back() -> None:
    sub = subscription(removed_privileges={"seats": frozenset({"root"})})
    assert set(sub.features["seats"].privileges) == {"max"}


def test_pure_gate_feature_has_no_privileges() -> None:
    assert subscription().features["api"].privileges == {}


def test_deleted_feature_or_privilege_drops_out() -> None:
    features = {k: v for k, v in FEATURES.items() if k != "sso"}
    features["seats"] = FeatureDefinition("seats", privileges={"max": PrivilegeDefinition("max", ValueType.INTEGER)})
    from entitlements_sidecar.domain.model import SubscriptionDefinition, SubscriptionStatus

    definition = SubscriptionDefinition("s", "c", "pro", SubscriptionStatus.ACTIVE)
    resolved = resolve_subscription(definition, PRO, features)
    assert set(resolved.features) == {"seats", "api"}
    assert set(resolved.features["seats"].privileges) == {"max"}


def test_select_options_are_carried() -> None:
    provider = subscription().features["sso"].privileges["provider"]
    assert provider.select_options == ("google", "okta")
    assert provider.value_type is ValueType.SELECT
