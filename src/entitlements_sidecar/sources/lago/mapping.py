"""Lago JSON (docs/lago-contract.md §1-§4) -> domain definitions and resolved entitlements.

Lago returns a subscription's *resolved* entitlements (value, plan_value, override_value per privilege).
We keep that as the answer, and also derive the subscription's own rows (overrides, additions,
removals) against the plan, so a later `plan.updated` can be re-resolved locally without a Lago call
per subscription.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from entitlements_sidecar.domain.model import (
    FeatureDefinition,
    PlanDefinition,
    PrivilegeDefinition,
    PrivilegeValue,
    ResolvedFeature,
    ResolvedPrivilege,
    ResolvedSubscription,
    SubscriptionDefinition,
    SubscriptionStatus,
    ValueType,
)
from entitlements_sidecar.domain.periods import Billing, BillingTime, Period
from entitlements_sidecar.sources.lago.errors import LagoContractError

Json = dict[str, Any]


def feature_definition(raw: Json) -> FeatureDefinition:
    """A feature object, or the feature part of a plan/subscription entitlement (then only the
    privileges that have values appear, so callers merge it into what they know)."""
    return FeatureDefinition(
        code=raw["code"],
        name=raw.get("name"),
        description=raw.get("description"),
        privileges={p["code"]: _privilege_definition(p) for p in raw.get("privileges") or []},
    )


def merge_features(known: dict[str, FeatureDefinition], seen: Iterable[FeatureDefinition]) -> bool:
    """Add what entitlement responses revealed about features; True if anything changed."""
    changed = False
    for feature in seen:
        current = known.get(feature.code)
        privileges = dict(current.privileges) if current else {}
        privileges.update(feature.privileges)
        merged = FeatureDefinition(feature.code, feature.name, feature.description, privileges)
        if merged != current:
            known[feature.code] = merged
            changed = True
    return changed


def plan_definition(code: str, entitlements: list[Json]) -> PlanDefinition:
    return PlanDefinition(
        code=code,
        entitlements={
            e["code"]: {p["code"]: _value(p, p["value"]) for p in e.get("privileges") or []} for e in entitlements
        },
    )


def resolved_subscription(raw: Json) -> ResolvedSubscription:
    """A subscription object as Lago serializes it, with its embedded resolved `entitlements`."""
    features = {}
    for entitlement in raw.get("entitlements") or []:
        privileges = {}
        for p in entitlement.get("privileges") or []:
            value_type = _value_type(p)
            plan_value = p.get("plan_value")
            privileges[p["code"]] = ResolvedPrivilege(
                code=p["code"],
                name=p.get("name"),
                value_type=value_type,
                value=_value(p, p["value"]),
                plan_value=None if plan_value is None else _value(p, plan_value),
                overridden=p.get("override_value") is not None and p.get("override_value") != plan_value,
                select_options=tuple((p.get("config") or {}).get("select_options") or ()),
            )
        features[entitlement["code"]] = ResolvedFeature(
            entitlement["code"], entitlement.get("name"), entitlement.get("description"), privileges
        )
    return ResolvedSubscription(
        external_id=raw["external_id"],
        external_customer_id=raw["external_customer_id"],
        plan_code=raw["plan_code"],
        status=_status(raw),
        started_at=_timestamp(raw.get("started_at")),
        features=features,
        billing=billing(raw),
    )


def subscription_definition(
    raw: Json, plan: PlanDefinition | None, previous: SubscriptionDefinition | None = None
) -> SubscriptionDefinition:
    """The subscription's own rows, derived from its resolved view and the plan it is on.

    A removal shows in the resolved view only while the plan has what it removes, but Lago keeps it
    when the plan loses the feature and applies it again when the plan regains it (docs/lago-contract.md
    §3, "Removals outlive plan edits"). So a removal known from `previous` (the same row) is kept
    until the resolved view contradicts it, that is, shows the feature or privilege again.
    """
    plan_values = plan.entitlements if plan else {}
    values: dict[str, dict[str, PrivilegeValue]] = {}
    removed_privileges: dict[str, set[str]] = {}
    resolved = {e["code"]: e for e in raw.get("entitlements") or []}
    shown = {code: {p["code"] for p in e.get("privileges") or []} for code, e in resolved.items()}
    for code, entitlement in resolved.items():
        privileges = entitlement.get("privileges") or []
        own = {p["code"]: _value(p, p["override_value"]) for p in privileges if p.get("override_value") is not None}
        if own or code not in plan_values:  # an override, or a feature the plan does not have (an addition)
            values[code] = own
        if code in plan_values:
            missing = set(plan_values[code]) - shown[code]
            if missing:
                removed_privileges[code] = missing
    removed_features = set(plan_values) - set(resolved)
    row_id = raw.get("lago_id")
    if previous is not None and row_id is not None and previous.row_id == row_id:
        removed_features |= {code for code in previous.removed_features if code not in resolved}
        for code, codes in previous.removed_privileges.items():
            kept = {c for c in codes if c not in shown.get(code, set())}
            if kept:
                removed_privileges.setdefault(code, set()).update(kept)
    return SubscriptionDefinition(
        external_id=raw["external_id"],
        external_customer_id=raw["external_customer_id"],
        plan_code=raw["plan_code"],
        status=_status(raw),
        started_at=_timestamp(raw.get("started_at")),
        entitlements=values,
        removed_features=frozenset(removed_features),
        removed_privileges={code: frozenset(codes) for code, codes in removed_privileges.items()},
        row_id=row_id,
        billing=billing(raw),
    )


def listed_definition(raw: Json) -> SubscriptionDefinition:
    """A row of Lago's listing, which carries no entitlements: the subscription as if it had no own rows
    (its plan-level answer), stored provisional until its own read (sources/lago/full_sync.py)."""
    return SubscriptionDefinition(
        external_id=raw["external_id"],
        external_customer_id=raw["external_customer_id"],
        plan_code=raw["plan_code"],
        status=_status(raw),
        started_at=_timestamp(raw.get("started_at")),
        row_id=raw.get("lago_id"),
        billing=billing(raw),
    )


def features_in(entitlements: Iterable[Json]) -> list[FeatureDefinition]:
    return [feature_definition(e) for e in entitlements]


def _privilege_definition(raw: Json) -> PrivilegeDefinition:
    return PrivilegeDefinition(
        code=raw["code"],
        value_type=_value_type(raw),
        name=raw.get("name"),
        select_options=tuple((raw.get("config") or {}).get("select_options") or ()),
    )


def _value_type(raw: Json) -> ValueType:
    try:
        return ValueType(raw.get("value_type") or "string")
    except ValueError as exc:
        raise LagoContractError(f"lago sent an unknown value_type {raw.get('value_type')!r}") from exc


def _value(privilege: Json, value: Any) -> PrivilegeValue:
    """Lago sends typed JSON; accept its string forms too, as its input rules do."""
    value_type = _value_type(privilege)
    if value_type is ValueType.INTEGER:
        return int(value)
    if value_type is ValueType.BOOLEAN:
        return value if isinstance(value, bool) else str(value) == "true"
    return str(value)


def _status(raw: Json) -> SubscriptionStatus:
    try:
        return SubscriptionStatus(raw["status"])
    except ValueError as exc:
        raise LagoContractError(f"lago sent an unknown subscription status {raw['status']!r}") from exc


def billing(raw: Json) -> Billing:
    """The row's billing time and current period (docs/lago-usage.md, "Billing periods"): the period only
    while the row has one (an active subscription), and only when it is well formed."""
    time = BillingTime.ANNIVERSARY if raw.get("billing_time") == "anniversary" else BillingTime.CALENDAR
    try:
        start = _timestamp(raw.get("current_billing_period_started_at"))
        end = _timestamp(raw.get("current_billing_period_ending_at"))
    except (TypeError, ValueError):
        start = end = None
    if start is None or end is None or end < start:
        return Billing(time)
    return Billing(time, Period(start.astimezone(UTC), end.astimezone(UTC)))


def _timestamp(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
