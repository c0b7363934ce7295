"""Lago's JSON views of its records: the resolved subscription entitlements (§3), plan entitlements
(§2), features (§1) and subscriptions (§4)."""

from __future__ import annotations

import uuid
from typing import Any

from tests.lago_emulator.models import ApiError, Feature, Json, Plan, Privilege, Subscription, iso, now
from tests.lago_emulator.usage import billing_period


class LagoViews:
    features: dict[str, Feature]
    plans: dict[str, Plan]

    def resolve(self, row: Subscription) -> list[Json]:
        """The resolved view (§3 "Resolution algorithm"), in the SubscriptionEntitlement shape."""
        plan_values = self.plans[row.plan_code].values
        result = []
        codes = list(plan_values) + sorted(row.features - set(plan_values))
        for code in codes:
            feature = self.features.get(code)
            if feature is None or feature.deleted or (code in plan_values and code in row.feature_removals):
                continue
            plan_side = plan_values.get(code, {})
            sub_side = row.values.get(code, {})
            removed = row.privilege_removals.get(code, set())
            privileges, overrides = [], {}
            for privilege_code in list(plan_side) + [p for p in sub_side if p not in plan_side]:
                privilege = feature.privileges.get(privilege_code)
                if privilege is None or privilege.deleted:
                    continue
                if privilege_code not in sub_side and privilege_code in removed:
                    continue
                plan_value = plan_side.get(privilege_code)
                override = sub_side.get(privilege_code)
                value = override if override is not None else plan_value
                privileges.append(
                    {
                        "code": privilege.code,
                        "name": privilege.name,
                        "value_type": privilege.value_type,
                        "value": cast(privilege, value),
                        "plan_value": cast(privilege, plan_value),
                        "override_value": cast(privilege, override),
                        "config": privilege.config,
                    }
                )
                if override is not None:
                    overrides[privilege_code] = cast(privilege, override)
            result.append(
                {
                    "code": feature.code,
                    "name": feature.name,
                    "description": feature.description,
                    "privileges": privileges,
                    "overrides": overrides,
                }
            )
        return result

    def plan_entitlements(self, code: str) -> list[Json]:
        if code not in self.plans:
            raise ApiError(404, "plan_not_found")
        plan = self.plans[code]
        result = []
        for feature_code, values in plan.values.items():
            feature = self.features[feature_code]
            if feature.deleted:
                continue
            privileges = [
                {
                    "code": p.code,
                    "name": p.name,
                    "value_type": p.value_type,
                    "value": cast(p, values[p.code]),
                    "config": p.config,
                }
                for p in feature.privileges.values()
                if p.code in values and not p.deleted
            ]
            result.append(
                {
                    "code": feature.code,
                    "name": feature.name,
                    "description": feature.description,
                    "privileges": privileges,
                }
            )
        return result

    def feature_json(self, feature: Feature) -> Json:
        return {
            "code": feature.code,
            "name": feature.name,
            "description": feature.description,
            "privileges": [
                {"code": p.code, "name": p.name, "value_type": p.value_type, "config": p.config}
                for p in feature.privileges.values()
                if not p.deleted
            ],
            "created_at": iso(feature.created_at),
        }

    def plan_json(self, plan: Plan) -> Json:
        return {
            "lago_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, plan.code)),
            "code": plan.code,
            "name": plan.name,
            "amount_cents": plan.amount_cents,
            "parent_id": None,
            "entitlements": self.plan_entitlements(plan.code),
        }

    def subscription_json(self, row: Subscription, with_entitlements: bool) -> Json:
        body: Json = {
            "lago_id": row.lago_id,
            "external_id": row.external_id,
            "lago_customer_id": row.external_customer_id,
            "external_customer_id": row.external_customer_id,
            "name": None,
            "plan_code": row.plan_code,
            "status": row.status,
            "billing_time": row.billing_time,
            **_current_period(row),
            "subscription_at": iso(row.created_at),
            "started_at": iso(row.started_at, millis=True),
            "terminated_at": iso(row.terminated_at),
            "canceled_at": iso(row.canceled_at),
            "created_at": iso(row.created_at),
            "previous_plan_code": row.previous_plan_code,
            "next_plan_code": row.next_plan_code,
            "downgrade_plan_date": row.downgrade_plan_date,
        }
        if with_entitlements:
            body["entitlements"] = self.resolve(row)
            body["plan"] = {"code": row.plan_code, "name": self.plans[row.plan_code].name, "parent_id": None}
        return body


def cast(privilege: Privilege, value: str | None) -> Any:
    if value is None:
        return None
    if privilege.value_type == "integer":
        return int(value)
    if privilege.value_type == "boolean":
        return value == "true"
    return value


def _current_period(row: Subscription) -> Json:
    if row.status != "active":
        return {"current_billing_period_started_at": None, "current_billing_period_ending_at": None}
    start, end = billing_period(now(), row)
    return {"current_billing_period_started_at": iso(start), "current_billing_period_ending_at": iso(end)}
