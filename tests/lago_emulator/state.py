"""Lago's write services, as described in lago-contract.md §1-§5.

Every write queues the webhooks Lago would emit, with the payload serialized when queued.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from typing import Any

from tests.lago_emulator.models import (
    _CANONICAL_INT,
    ApiError,
    Feature,
    Json,
    Plan,
    Privilege,
    Subscription,
    Webhook,
    iso,
    now,
)
from tests.lago_emulator.usage import UsageLedger
from tests.lago_emulator.views import LagoViews


class LagoState(LagoViews):
    def __init__(self, organization_id: str = "1a901a90-1a90-1a90-1a90-1a901a901a90") -> None:
        self.lock = threading.RLock()
        self.organization_id = organization_id
        self.features: dict[str, Feature] = {}
        self.plans: dict[str, Plan] = {}
        self.rows: list[Subscription] = []
        self._by_external_id: dict[str, list[Subscription]] = {}
        self.outbox: list[Webhook] = []
        self.usage = UsageLedger()  # billable metrics, events and current usage (tests/lago_emulator/usage.py)
        self._seq = itertools.count(1)

    # -- features (§1) --------------------------------------------------------------------

    def create_feature(self, code: str, privileges: list[Json] | None = None, name: str | None = None) -> Json:
        with self.lock:
            if code in self.features and not self.features[code].deleted:
                raise ApiError(422, "validation_errors", {"code": ["value_already_exist"]})
            feature = Feature(code, name, None, {}, now(), next(self._seq))
            for raw in privileges or []:
                feature.privileges[raw["code"]] = Privilege(
                    raw["code"], raw.get("name"), raw.get("value_type", "string"), raw.get("config") or {}
                )
            self.features[code] = feature
            self._emit("feature.created", "feature", self.feature_json(feature))
            return self.feature_json(feature)

    def update_feature(self, code: str, name: str | None = None, privileges: list[Json] | None = None) -> Json:
        with self.lock:
            feature = self._feature(code)
            if name is not None:
                feature.name = name
            for raw in privileges or []:
                existing = feature.privileges.get(raw["code"])
                if existing is None or existing.deleted:
                    feature.privileges[raw["code"]] = Privilege(
                        raw["code"], raw.get("name"), raw.get("value_type", "string"), raw.get("config") or {}
                    )
                else:  # only the name changes; select options are unioned
                    existing.name = raw.get("name", existing.name)
                    options = (raw.get("config") or {}).get("select_options")
                    if options:
                        merged = list(existing.config.get("select_options", []))
                        merged += [o for o in options if o not in merged]
                        existing.config = {"select_options": merged}
            self._emit("feature.updated", "feature", self.feature_json(feature))
            self._emit_plans_using(code)
            return self.feature_json(feature)

    def delete_feature(self, code: str) -> Json:
        with self.lock:
            feature = self._feature(code)
            plans = [p for p in self.plans.values() if code in p.values]
            feature.deleted = True
            for privilege in feature.privileges.values():
                privilege.deleted = True
            for plan in plans:
                plan.values.pop(code, None)
            for row in self.rows:
                row.features.discard(code)
                row.values.pop(code, None)
            for plan in plans:
                self._emit("plan.updated", "plan", self.plan_json(plan))
            self._emit("feature.deleted", "feature", self.feature_json(feature))
            return self.feature_json(feature)

    def delete_privilege(self, code: str, privilege_code: str) -> Json:
        with self.lock:
            feature = self._feature(code)
            privilege = feature.privileges.get(privilege_code)
            if privilege is None or privilege.deleted:
                raise ApiError(404, "privilege_not_found")
            privilege.deleted = True
            for plan in self.plans.values():
                plan.values.get(code, {}).pop(privilege_code, None)
            for row in self.rows:
                row.values.get(code, {}).pop(privilege_code, None)
            self._emit("feature.updated", "feature", self.feature_json(feature))
            self._emit_plans_using(code)
            return self.feature_json(feature)

    # -- plans (§2) -----------------------------------------------------------------------

    def create_plan(self, code: str, amount_cents: int = 1000, name: str | None = None) -> None:
        with self.lock:
            self.plans[code] = Plan(code, name or code.title(), amount_cents)
            self._emit("plan.created", "plan", self.plan_json(self.plans[code]))

    def write_plan_entitlements(self, code: str, body: Json, replace: bool) -> list[Json]:
        with self.lock:
            plan = self._plan(code)
            parsed = self._parse_values(body)
            if replace:
                plan.values = {f: {} for f in parsed}
            for feature_code, values in parsed.items():
                plan.values.setdefault(feature_code, {})
                if replace:
                    plan.values[feature_code] = dict(values)
                else:
                    plan.values[feature_code].update(values)
            self._emit("plan.updated", "plan", self.plan_json(plan))
            return self.plan_entitlements(code)

    def delete_plan_feature(self, code: str, feature_code: str) -> None:
        with self.lock:
            plan = self._plan(code)
            if feature_code not in plan.values:
                raise ApiError(404, "entitlement_not_found")
            del plan.values[feature_code]
            self._emit("plan.updated", "plan", self.plan_json(plan))

    # -- subscriptions (§3, §4) -----------------------------------------------------------

    def create_subscription(self, external_id: str, customer: str, plan_code: str) -> Json:
        """POST /subscriptions: create, upgrade or downgrade (by the plans' amounts)."""
        with self.lock:
            plan = self._plan(plan_code)
            current = self._row(external_id, "active", missing_ok=True)
            if current is None:
                row = self._new_row(external_id, customer, plan_code, "active")
                self._emit("subscription.started", "subscription", self.subscription_json(row, True))
                return self.subscription_json(row, True)
            if current.plan_code == plan_code:
                return self.subscription_json(current, True)
            for pending in self._rows(external_id, "pending"):  # a new change cancels a pending downgrade
                pending.status, pending.canceled_at = "canceled", now()
            if plan.amount_cents >= self.plans[current.plan_code].amount_cents:  # upgrade
                current.status, current.terminated_at, current.next_plan_code = "terminated", now(), plan_code
                row = self._new_row(external_id, customer, plan_code, "active", previous=current.plan_code)
                self._emit("subscription.terminated", "subscription", self.subscription_json(current, False))
                self._emit("subscription.started", "subscription", self.subscription_json(row, True))
                return self.subscription_json(row, True)
            row = self._new_row(external_id, customer, plan_code, "pending", previous=current.plan_code)
            row.started_at = None
            current.next_plan_code, current.downgrade_plan_date = plan_code, "2099-01-01"
            self._emit("subscription.updated", "subscription", self.subscription_json(current, True))
            return self.subscription_json(row, True)

    def apply_pending_downgrade(self, external_id: str) -> None:
        """The end of the billing period: the old row terminates and the pending one starts."""
        with self.lock:
            current = self._row(external_id, "active")
            pending = self._row(external_id, "pending")
            current.status, current.terminated_at = "terminated", now()
            pending.status, pending.started_at = "active", now()
            self._emit("subscription.terminated", "subscription", self.subscription_json(current, False))
            self._emit("subscription.started", "subscription", self.subscription_json(pending, True))

    def terminate(self, external_id: str, status: str = "active") -> Json:
        """DELETE /subscriptions/{id}[?status=pending]: terminate an active row or cancel a pending one."""
        with self.lock:
            row = self._row(external_id, status)
            if status == "pending":
                row.status, row.canceled_at = "canceled", now()
            else:
                row.status, row.terminated_at = "terminated", now()
            self._emit("subscription.terminated", "subscription", self.subscription_json(row, False))
            return self.subscription_json(row, False)

    def patch_subscription_entitlements(self, external_id: str, body: Json, status: str = "active") -> list[Json]:
        with self.lock:
            row = self._row(external_id, status)
            plan_values = self._plan(row.plan_code).values
            for feature_code, values in self._parse_values(body).items():
                if feature_code not in plan_values:
                    row.features.add(feature_code)
                    row.values.setdefault(feature_code, {}).update(values)
                    continue
                if values == plan_values[feature_code]:  # "reset to plan"
                    row.values.pop(feature_code, None)
                    row.feature_removals.discard(feature_code)
                    row.privilege_removals.pop(feature_code, None)
                    continue
                row.feature_removals.discard(feature_code)
                overrides = row.values.setdefault(feature_code, {})
                for privilege_code, value in values.items():
                    if plan_values[feature_code].get(privilege_code) == value:
                        overrides.pop(privilege_code, None)
                    else:
                        overrides[privilege_code] = value
            self._emit("subscription.updated", "subscription", self.subscription_json(row, True))
            return self.resolve(row)

    def remove_subscription_feature(self, external_id: str, feature_code: str) -> list[Json]:
        with self.lock:
            row = self._row(external_id, "active")
            row.values.pop(feature_code, None)
            row.features.discard(feature_code)
            if feature_code in self._plan(row.plan_code).values:
                row.feature_removals.add(feature_code)
            self._emit("subscription.updated", "subscription", self.subscription_json(row, True))
            return self.resolve(row)

    def remove_subscription_privilege(self, external_id: str, feature_code: str, privilege_code: str) -> list[Json]:
        with self.lock:
            row = self._row(external_id, "active")
            row.values.get(feature_code, {}).pop(privilege_code, None)
            if feature_code in self._plan(row.plan_code).values:
                row.privilege_removals.setdefault(feature_code, set()).add(privilege_code)
            self._emit("subscription.updated", "subscription", self.subscription_json(row, True))
            return self.resolve(row)

    # -- reads ----------------------------------------------------------------------------

    def find_row(self, external_id: str, status: str = "active") -> Subscription:
        return self._row(external_id, status)

    def rows_matching(self, statuses: list[str] | None, **filters: str) -> list[Subscription]:
        rows = [r for r in self.rows if r.status in (statuses or ["active"])]
        for key, value in filters.items():
            rows = [r for r in rows if getattr(r, key) == value]
        # Newest first (equal ones keep their order, as with negated keys); no per-row timestamp() calls:
        # a listing of 20,000 rows sorts on every page.
        return sorted(rows, key=lambda r: (r.started_at or r.created_at, r.created_at), reverse=True)

    # -- internals ------------------------------------------------------------------------

    def _new_row(self, external_id: str, customer: str, plan_code: str, status: str, previous: str | None = None):  # type: ignore[no-untyped-def]
        moment = now()
        row = Subscription(
            str(uuid.uuid4()),
            external_id,
            customer,
            plan_code,
            status,
            moment,
            started_at=moment,
            previous_plan_code=previous,
        )
        self.rows.append(row)
        self._by_external_id.setdefault(external_id, []).append(row)
        return row

    def _rows(self, external_id: str, status: str) -> list[Subscription]:
        rows = [r for r in self._by_external_id.get(external_id, []) if r.status == status]
        # terminated_at DESC NULLS FIRST, started_at DESC
        return sorted(
            rows,
            key=lambda r: (
                r.terminated_at is not None,
                -(r.terminated_at or now()).timestamp(),
                -(r.started_at or r.created_at).timestamp(),
            ),
        )

    def _row(self, external_id: str, status: str, missing_ok: bool = False) -> Subscription:
        rows = self._rows(external_id, status)
        if not rows:
            if missing_ok:
                return None  # type: ignore[return-value]
            raise ApiError(404, "subscription_not_found")
        return rows[0]

    def _feature(self, code: str) -> Feature:
        feature = self.features.get(code)
        if feature is None or feature.deleted:
            raise ApiError(404, "feature_not_found")
        return feature

    def _plan(self, code: str) -> Plan:
        if code not in self.plans:
            raise ApiError(404, "plan_not_found")
        return self.plans[code]

    def _parse_values(self, body: Json) -> dict[str, dict[str, str]]:
        parsed: dict[str, dict[str, str]] = {}
        for feature_code, values in (body or {}).items():
            feature = self._feature(feature_code)
            parsed[feature_code] = {}
            for privilege_code, value in (values or {}).items():
                privilege = feature.privileges.get(privilege_code)
                if privilege is None or privilege.deleted:
                    raise ApiError(404, "privilege_not_found")
                parsed[feature_code][privilege_code] = _store(privilege, value)
        return parsed

    def trigger_alert(self, external_id: str, metric_code: str, threshold: int) -> None:
        """An `alert.triggered` for a `billable_metric_current_usage_units` alert whose threshold the
        subscription's usage of the metric crossed (docs/lago-usage.md, "Alerts")."""
        row = self.find_row(external_id)
        [charge] = self.usage.current_usage(row, metric_code)["customer_usage"]["charges_usage"]
        self._emit(
            "alert.triggered",
            "triggered_alert",
            {
                "lago_id": f"ta-{len(self.outbox)}",
                "lago_alert_id": f"alert-{metric_code}",
                "lago_subscription_id": row.lago_id,
                "external_subscription_id": external_id,
                "lago_wallet_id": None,
                "external_customer_id": row.external_customer_id,
                "billable_metric_code": metric_code,
                "alert_name": "hard limit",
                "alert_code": "hard",
                "alert_type": "billable_metric_current_usage_units",
                "current_value": charge["units"],
                "previous_value": "0",
                "crossed_thresholds": [{"code": "hard", "value": str(threshold), "recurring": False}],
                "triggered_at": iso(now()),
            },
        )

    def _emit(self, webhook_type: str, object_type: str, payload: Json) -> None:
        envelope = {
            "webhook_type": webhook_type,
            "object_type": object_type,
            "organization_id": self.organization_id,
            object_type: payload,
        }
        self.outbox.append(Webhook(webhook_type, object_type, envelope))

    def _emit_plans_using(self, feature_code: str) -> None:
        for plan in self.plans.values():
            if feature_code in plan.values:
                self._emit("plan.updated", "plan", self.plan_json(plan))


def _store(privilege: Privilege, value: Any) -> str:
    """Lago's input rules (§2 "Value input rules"); values are stored as strings."""
    invalid = ApiError(422, "validation_errors", {f"{privilege.code}_privilege_value": ["value_is_invalid"]})
    if privilege.value_type == "integer":
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and _CANONICAL_INT.fullmatch(value))
        ):
            raise invalid
        return str(int(value))
    if privilege.value_type == "boolean":
        if value in (True, False, "true", "false"):
            return "true" if value in (True, "true") else "false"
        raise invalid
    if not isinstance(value, str):
        raise invalid
    if privilege.value_type == "select" and value not in privilege.config.get("select_options", []):
        raise ApiError(422, "validation_errors", {f"{privilege.code}_privilege_value": ["value_not_in_select_options"]})
    return value
