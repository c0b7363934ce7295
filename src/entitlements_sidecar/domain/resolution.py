"""Lago's resolution rules (docs/lago-contract.md §3, "Resolution algorithm").

- features: the plan's entitlements joined with the subscription's own; a plan feature with a
  subscription feature removal is dropped; features unknown to the catalog are dropped;
- privileges: value = subscription value if present, else plan value; a plan privilege with a
  subscription privilege removal is dropped;
- an override equal to the plan value is not an override (Lago deletes such rows);
- a feature with no privileges is a pure gate: present means entitled.
"""

from __future__ import annotations

from collections.abc import Mapping

from entitlements_sidecar.domain.model import (
    FeatureDefinition,
    PlanDefinition,
    PrivilegeValue,
    ResolvedFeature,
    ResolvedPrivilege,
    ResolvedSubscription,
    SubscriptionDefinition,
)


def resolve_subscription(
    subscription: SubscriptionDefinition,
    plan: PlanDefinition | None,
    features: Mapping[str, FeatureDefinition],
) -> ResolvedSubscription:
    plan_entitlements = plan.entitlements if plan is not None else {}
    resolved: dict[str, ResolvedFeature] = {}
    feature_codes = list(plan_entitlements) + [
        code for code in subscription.entitlements if code not in plan_entitlements
    ]
    for feature_code in feature_codes:
        definition = features.get(feature_code)
        if definition is None:
            continue  # a deleted feature drops out everywhere
        on_plan = feature_code in plan_entitlements
        if on_plan and feature_code in subscription.removed_features:
            continue
        resolved[feature_code] = ResolvedFeature(
            code=feature_code,
            name=definition.name,
            description=definition.description,
            privileges=_resolve_privileges(
                definition,
                plan_entitlements.get(feature_code, {}),
                subscription.entitlements.get(feature_code, {}),
                subscription.removed_privileges.get(feature_code, frozenset()),
            ),
        )
    return ResolvedSubscription(
        external_id=subscription.external_id,
        external_customer_id=subscription.external_customer_id,
        plan_code=subscription.plan_code,
        status=subscription.status,
        started_at=subscription.started_at,
        features=resolved,
        billing=subscription.billing,
    )


def _resolve_privileges(
    feature: FeatureDefinition,
    plan_values: Mapping[str, PrivilegeValue],
    subscription_values: Mapping[str, PrivilegeValue],
    removed: frozenset[str],
) -> dict[str, ResolvedPrivilege]:
    result: dict[str, ResolvedPrivilege] = {}
    codes = list(plan_values) + [code for code in subscription_values if code not in plan_values]
    for code in codes:
        definition = feature.privileges.get(code)
        if definition is None:
            continue  # a deleted privilege drops out with its values
        plan_value = plan_values.get(code)
        if code in subscription_values:
            value = subscription_values[code]
        elif code in removed:
            continue
        elif plan_value is not None:
            value = plan_value
        else:
            continue
        result[code] = ResolvedPrivilege(
            code=code,
            name=definition.name,
            value_type=definition.value_type,
            value=value,
            plan_value=plan_value,
            overridden=code in subscription_values and value != plan_value,
            select_options=definition.select_options,
        )
    return result
