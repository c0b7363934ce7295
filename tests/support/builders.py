"""Small builders for domain tests."""

from __future__ import annotations

from datetime import UTC, datetime

from entitlements_sidecar.domain.model import (
    FeatureDefinition,
    PlanDefinition,
    PrivilegeDefinition,
    ResolvedSubscription,
    SubscriptionDefinition,
    SubscriptionStatus,
    ValueType,
)
from entitlements_sidecar.domain.resolution import resolve_subscription

FEATURES = {
    "seats": FeatureDefinition(
        "seats",
        "Seats",
        privileges={
            "max": PrivilegeDefinition("max", ValueType.INTEGER, "Maximum"),
            "root": PrivilegeDefinition("root", ValueType.BOOLEAN),
        },
    ),
    "sso": FeatureDefinition(
        "sso",
        privileges={
            "provider": PrivilegeDefinition("provider", ValueType.SELECT, select_options=("google", "okta")),
            "domain": PrivilegeDefinition("domain", ValueType.STRING),
        },
    ),
    "api": FeatureDefinition("api"),
}
PRO = PlanDefinition("pro", {"seats": {"max": 10, "root": True}, "sso": {"provider": "google"}, "api": {}})
STARTER = PlanDefinition("starter", {"seats": {"max": 3, "root": False}})


def subscription(
    external_id: str = "sub_1",
    plan: PlanDefinition = PRO,
    customer: str = "acme",
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE,
    started: str | None = "2026-08-01",
    **changes: object,
) -> ResolvedSubscription:
    definition = SubscriptionDefinition(
        external_id=external_id,
        external_customer_id=customer,
        plan_code=plan.code,
        status=status,
        started_at=datetime.fromisoformat(started).replace(tzinfo=UTC) if started else None,
        **changes,  # type: ignore[arg-type]
    )
    return resolve_subscription(definition, plan, FEATURES)


def definition(external_id: str = "s1", plan: str = "pro", **changes: object) -> SubscriptionDefinition:
    """A syncer-side subscription definition of customer acme."""
    return SubscriptionDefinition(
        external_id=external_id, external_customer_id="acme", plan_code=plan, status=SubscriptionStatus.ACTIVE,
        **changes,  # type: ignore[arg-type]
    )  # fmt: skip
