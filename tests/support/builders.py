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
from entitlements_sidecar.domain.ports import EntitlementStore
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


def own(
    external_id: str = "sub_1",
    plan: PlanDefinition = PRO,
    customer: str = "acme",
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE,
    started: str | None = "2026-08-01",
    **changes: object,
) -> SubscriptionDefinition:
    """A subscription's own part, as the map stores it."""
    return SubscriptionDefinition(
        external_id=external_id,
        external_customer_id=customer,
        plan_code=plan.code,
        status=status,
        started_at=datetime.fromisoformat(started).replace(tzinfo=UTC) if started else None,
        **changes,  # type: ignore[arg-type]
    )


def subscription(
    external_id: str = "sub_1",
    plan: PlanDefinition = PRO,
    customer: str = "acme",
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE,
    started: str | None = "2026-08-01",
    **changes: object,
) -> ResolvedSubscription:
    """The answer for `own(...)` with the same arguments, once `seed` wrote the catalog and plans."""
    return resolve_subscription(own(external_id, plan, customer, status, started, **changes), plan, FEATURES)


async def seed(store: EntitlementStore, *plans: PlanDefinition) -> None:
    """Write the catalog and the plans (PRO and STARTER unless given) the builders' answers compose with."""
    await store.put_features(FEATURES)
    for plan in plans or (PRO, STARTER):
        await store.put_plan(plan)


async def put_resolved(store: EntitlementStore, *subscriptions: ResolvedSubscription) -> None:
    """Store answers given whole: each subscription's features become its plan's values (so subscriptions
    that share a plan code must have the same features) and the catalog learns their definitions."""
    catalog = await store.features()
    for sub in subscriptions:
        for f in sub.features.values():
            privileges = {
                p.code: PrivilegeDefinition(p.code, p.value_type, p.name, p.select_options)
                for p in f.privileges.values()
            }
            catalog[f.code] = FeatureDefinition(f.code, f.name, f.description, privileges)
    await store.put_features(catalog)
    for sub in subscriptions:
        values = {f.code: {p.code: p.value for p in f.privileges.values()} for f in sub.features.values()}
        await store.put_plan(PlanDefinition(sub.plan_code, values))
        await store.put_subscription(
            SubscriptionDefinition(
                sub.external_id, sub.external_customer_id, sub.plan_code, sub.status, sub.started_at,
                billing=sub.billing,
            )
        )  # fmt: skip


def definition(external_id: str = "s1", plan: str = "pro", **changes: object) -> SubscriptionDefinition:
    """A syncer-side subscription definition of customer acme."""
    return SubscriptionDefinition(
        external_id=external_id, external_customer_id="acme", plan_code=plan, status=SubscriptionStatus.ACTIVE,
        **changes,  # type: ignore[arg-type]
    )  # fmt: skip
