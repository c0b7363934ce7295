"""Loading and validating a catalog file (YAML or JSON, in Lago's shapes).

Every error names the file, the path inside it and the problem, for example
`catalog.yaml: subscriptions[2].overrides["seats"]["max"]: expected an integer, got 'ten'`.
The value rules are Lago's input rules (docs/lago-contract.md §2, "Value input rules").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import yaml

from entitlements_sidecar.domain.errors import CatalogError
from entitlements_sidecar.domain.model import (
    FeatureDefinition,
    PlanDefinition,
    PrivilegeDefinition,
    PrivilegeValue,
    ResolvedSubscription,
    SubscriptionDefinition,
    SubscriptionStatus,
    ValueType,
)
from entitlements_sidecar.domain.periods import Billing, BillingTime
from entitlements_sidecar.domain.resolution import resolve_subscription
from entitlements_sidecar.domain.usage import Meters
from entitlements_sidecar.sources.meters_file import parse_meters

_MAX_CODE = 255
_INT64 = (-(2**63), 2**63 - 1)
_CANONICAL_INT = re.compile(r"-?(0|[1-9][0-9]*)")
_TOP_KEYS = {"features", "plans", "subscriptions", "meters"}
_FEATURE_KEYS = {"code", "name", "description", "privileges"}
_PRIVILEGE_KEYS = {"code", "name", "value_type", "config"}
_PLAN_KEYS = {"code", "name", "entitlements"}
_SUBSCRIPTION_KEYS = {
    "external_id",
    "external_customer_id",
    "plan_code",
    "status",
    "started_at",
    "billing_time",
    "overrides",
    "additions",
    "removals",
}
_REMOVAL_KEYS = {"features", "privileges"}


@dataclass(frozen=True, slots=True)
class Catalog:
    features: Mapping[str, FeatureDefinition]
    plans: Mapping[str, PlanDefinition]
    subscriptions: Mapping[str, SubscriptionDefinition]
    meters: Meters = field(
        default_factory=Meters
    )  # usage meters (sources/meters_file.py): which privileges are quotas of which metric

    def resolve(self) -> dict[str, ResolvedSubscription]:
        return {
            sub_id: resolve_subscription(sub, self.plans.get(sub.plan_code), self.features)
            for sub_id, sub in self.subscriptions.items()
        }


def load_catalog(path: Path) -> Catalog:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CatalogError(str(path), "", f"cannot read file: {exc.strerror or exc}") from exc
    return parse_catalog(raw, str(path), json=path.suffix.lower() == ".json")


def parse_catalog(raw: bytes, file: str, json: bool = False) -> Catalog:
    try:
        document = orjson.loads(raw) if json else yaml.safe_load(raw)
    except orjson.JSONDecodeError as exc:
        raise CatalogError(file, "", f"invalid JSON: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise CatalogError(file, "", f"invalid YAML{where}: {getattr(exc, 'problem', exc)}") from exc
    return _Parser(file).catalog(document)


class _Parser:
    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, path: str, problem: str) -> CatalogError:
        return CatalogError(self.file, path, problem)

    def catalog(self, document: Any) -> Catalog:
        top = self.mapping(document, "", _TOP_KEYS)
        features: dict[str, FeatureDefinition] = {}
        for i, item in enumerate(self.sequence(top.get("features", []), "features")):
            feature = self.feature(item, f"features[{i}]")
            if feature.code in features:
                raise self.fail(f"features[{i}].code", f"duplicate feature code {feature.code!r}")
            features[feature.code] = feature
        plans: dict[str, PlanDefinition] = {}
        for i, item in enumerate(self.sequence(top.get("plans", []), "plans")):
            plan = self.plan(item, f"plans[{i}]", features)
            if plan.code in plans:
                raise self.fail(f"plans[{i}].code", f"duplicate plan code {plan.code!r}")
            plans[plan.code] = plan
        subscriptions: dict[str, SubscriptionDefinition] = {}
        for i, item in enumerate(self.sequence(top.get("subscriptions", []), "subscriptions")):
            sub = self.subscription(item, f"subscriptions[{i}]", features, plans)
            if sub.external_id in subscriptions:
                raise self.fail(f"subscriptions[{i}].external_id", f"duplicate external_id {sub.external_id!r}")
            subscriptions[sub.external_id] = sub
        meters = parse_meters(top.get("meters", []), self.file, features)
        return Catalog(features, plans, subscriptions, meters)

    # -- definitions ------------------------------------------------------------------------

    def feature(self, item: Any, path: str) -> FeatureDefinition:
        data = self.mapping(item, path, _FEATURE_KEYS)
        code = self.code(data.get("code"), f"{path}.code")
        privileges: dict[str, PrivilegeDefinition] = {}
        for j, raw in enumerate(self.sequence(data.get("privileges", []), f"{path}.privileges")):
            privilege = self.privilege(raw, f"{path}.privileges[{j}]")
            if privilege.code in privileges:
                raise self.fail(f"{path}.privileges[{j}].code", f"duplicate privilege code {privilege.code!r}")
            privileges[privilege.code] = privilege
        return FeatureDefinition(
            code,
            self.optional_text(data.get("name"), f"{path}.name", 255),
            self.optional_text(data.get("description"), f"{path}.description", 600),
            privileges,
        )

    def privilege(self, item: Any, path: str) -> PrivilegeDefinition:
        data = self.mapping(item, path, _PRIVILEGE_KEYS)
        code = self.code(data.get("code"), f"{path}.code")
        raw_type = data.get("value_type", "string")  # Lago's database default
        try:
            value_type = ValueType(raw_type)
        except ValueError:
            allowed = ", ".join(t.value for t in ValueType)
            raise self.fail(f"{path}.value_type", f"must be one of {allowed}, got {raw_type!r}") from None
        config = self.mapping(data.get("config") or {}, f"{path}.config", {"select_options"})
        options: tuple[str, ...] = ()
        if value_type is ValueType.SELECT:
            raw_options = config.get("select_options")
            if not isinstance(raw_options, list) or not raw_options or not all(isinstance(o, str) for o in raw_options):
                raise self.fail(f"{path}.config.select_options", "a select privilege needs a non-empty list of strings")
            options = tuple(raw_options)
        elif config:
            raise self.fail(f"{path}.config", f"must be empty for a {value_type.value} privilege")
        name = self.optional_text(data.get("name"), f"{path}.name", 255)
        return PrivilegeDefinition(code, value_type, name, options)

    def plan(self, item: Any, path: str, features: Mapping[str, FeatureDefinition]) -> PlanDefinition:
        data = self.mapping(item, path, _PLAN_KEYS)
        code = self.code(data.get("code"), f"{path}.code")
        entitlements = self.values(data.get("entitlements", {}), f"{path}.entitlements", features)
        return PlanDefinition(code, entitlements, self.optional_text(data.get("name"), f"{path}.name", 255))

    def subscription(
        self,
        item: Any,
        path: str,
        features: Mapping[str, FeatureDefinition],
        plans: Mapping[str, PlanDefinition],
    ) -> SubscriptionDefinition:
        data = self.mapping(item, path, _SUBSCRIPTION_KEYS)
        external_id = self.code(data.get("external_id"), f"{path}.external_id")
        customer = self.code(data.get("external_customer_id"), f"{path}.external_customer_id")
        plan_code = self.code(data.get("plan_code"), f"{path}.plan_code")
        plan = plans.get(plan_code)
        if plan is None:
            raise self.fail(f"{path}.plan_code", f"unknown plan {plan_code!r}")
        raw_status = data.get("status", "active")
        try:
            status = SubscriptionStatus(raw_status)
        except ValueError:
            allowed = ", ".join(s.value for s in SubscriptionStatus)
            raise self.fail(f"{path}.status", f"must be one of {allowed}, got {raw_status!r}") from None
        overrides = self.values(data.get("overrides", {}), f"{path}.overrides", features)
        for feature_code in overrides:
            if feature_code not in plan.entitlements:
                raise self.fail(
                    f'{path}.overrides["{feature_code}"]',
                    f"feature is not on plan {plan_code!r}; list it under additions",
                )
        additions = self.values(data.get("additions", {}), f"{path}.additions", features)
        for feature_code in additions:
            if feature_code in plan.entitlements:
                raise self.fail(
                    f'{path}.additions["{feature_code}"]',
                    f"feature is already on plan {plan_code!r}; list it under overrides",
                )
        removed_features, removed_privileges = self.removals(data.get("removals", {}), f"{path}.removals", plan)
        for feature_code, codes in removed_privileges.items():
            for code in codes & set(overrides.get(feature_code, {})):
                raise self.fail(
                    f'{path}.removals.privileges["{feature_code}"]',
                    f"privilege {code!r} is both overridden and removed",
                )
        for feature_code in removed_features & set(overrides):
            raise self.fail(f"{path}.removals.features", f"feature {feature_code!r} is both overridden and removed")
        return SubscriptionDefinition(
            external_id=external_id,
            external_customer_id=customer,
            plan_code=plan_code,
            status=status,
            started_at=self.timestamp(data.get("started_at"), f"{path}.started_at"),
            entitlements={**overrides, **additions},
            removed_features=removed_features,
            removed_privileges=removed_privileges,
            billing=Billing(self.billing_time(data.get("billing_time", "calendar"), f"{path}.billing_time")),
        )

    def billing_time(self, item: Any, path: str) -> BillingTime:
        if item not in {"calendar", "anniversary"}:
            raise self.fail(path, f"must be calendar or anniversary, got {item!r}")
        return BillingTime(item)

    def removals(self, item: Any, path: str, plan: PlanDefinition) -> tuple[frozenset[str], dict[str, frozenset[str]]]:
        data = self.mapping(item, path, _REMOVAL_KEYS)
        features: set[str] = set()
        for i, raw in enumerate(self.sequence(data.get("features", []), f"{path}.features")):
            code = self.code(raw, f"{path}.features[{i}]")
            if code not in plan.entitlements:
                raise self.fail(f"{path}.features[{i}]", f"feature {code!r} is not on plan {plan.code!r}")
            features.add(code)
        privileges: dict[str, frozenset[str]] = {}
        by_feature = self.mapping(data.get("privileges", {}), f"{path}.privileges", None)
        for feature_code, raw_codes in by_feature.items():
            where = f'{path}.privileges["{feature_code}"]'
            plan_values = plan.entitlements.get(str(feature_code))
            if plan_values is None:
                raise self.fail(where, f"feature is not on plan {plan.code!r}")
            codes = set()
            for i, raw in enumerate(self.sequence(raw_codes, where)):
                code = self.code(raw, f"{where}[{i}]")
                if code not in plan_values:
                    raise self.fail(f"{where}[{i}]", f"privilege {code!r} has no value on plan {plan.code!r}")
                codes.add(code)
            privileges[str(feature_code)] = frozenset(codes)
        return frozenset(features), privileges

    # -- values -----------------------------------------------------------------------------

    def values(
        self, item: Any, path: str, features: Mapping[str, FeatureDefinition]
    ) -> dict[str, dict[str, PrivilegeValue]]:
        """`{feature_code: {privilege_code: value}}`, Lago's entitlement request body."""
        result: dict[str, dict[str, PrivilegeValue]] = {}
        for feature_code, privileges in self.mapping(item, path, None).items():
            where = f'{path}["{feature_code}"]'
            feature = features.get(str(feature_code))
            if feature is None:
                raise self.fail(where, f"unknown feature {feature_code!r}")
            values: dict[str, PrivilegeValue] = {}
            for privilege_code, raw in self.mapping(privileges or {}, where, None).items():
                definition = feature.privileges.get(str(privilege_code))
                if definition is None:
                    raise self.fail(
                        f'{where}["{privilege_code}"]', f"feature {feature.code!r} has no privilege {privilege_code!r}"
                    )
                values[definition.code] = self.value(raw, definition, f'{where}["{privilege_code}"]')
            result[feature.code] = values
        return result

    def value(self, raw: Any, definition: PrivilegeDefinition, path: str) -> PrivilegeValue:
        kind = definition.value_type
        if kind is ValueType.INTEGER:
            if isinstance(raw, str) and _CANONICAL_INT.fullmatch(raw):
                raw = int(raw)
            if not isinstance(raw, int) or isinstance(raw, bool):
                raise self.fail(path, f"expected an integer, got {raw!r}")
            if not _INT64[0] <= raw <= _INT64[1]:
                raise self.fail(path, f"integer {raw} is outside the 64-bit range")
            return int(raw)
        if kind is ValueType.BOOLEAN:
            if raw in ("true", "false"):
                return bool(raw == "true")
            if not isinstance(raw, bool):
                raise self.fail(path, f"expected true or false, got {raw!r}")
            return bool(raw)
        if not isinstance(raw, str):
            raise self.fail(path, f"expected a string, got {raw!r}")
        if kind is ValueType.SELECT and raw not in definition.select_options:
            raise self.fail(path, f"{raw!r} is not one of the select options {list(definition.select_options)}")
        return str(raw)

    # -- primitives -------------------------------------------------------------------------

    def mapping(self, item: Any, path: str, allowed: set[str] | None) -> dict[Any, Any]:
        if not isinstance(item, dict):
            raise self.fail(path or "(top level)", f"expected a mapping, got {type(item).__name__}")
        if allowed is not None:
            unknown = sorted(str(k) for k in item if k not in allowed)
            if unknown:
                raise self.fail(
                    path or "(top level)", f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
                )
        return item

    def sequence(self, item: Any, path: str) -> list[Any]:
        if not isinstance(item, list):
            raise self.fail(path, f"expected a list, got {type(item).__name__}")
        return item

    def code(self, item: Any, path: str) -> str:
        if not isinstance(item, str) or not item.strip():
            raise self.fail(path, "is required and must be a non-empty string")
        if len(item) > _MAX_CODE:
            raise self.fail(path, f"longer than {_MAX_CODE} characters")
        return item.strip()

    def optional_text(self, item: Any, path: str, limit: int) -> str | None:
        if item is None:
            return None
        if not isinstance(item, str):
            raise self.fail(path, f"expected a string, got {type(item).__name__}")
        if len(item) > limit:
            raise self.fail(path, f"longer than {limit} characters")
        return item

    def timestamp(self, item: Any, path: str) -> datetime | None:
        if item is None:
            return None
        if isinstance(item, datetime):  # YAML parses unquoted timestamps itself
            return item if item.tzinfo else item.replace(tzinfo=UTC)
        if isinstance(item, str):
            try:
                parsed = datetime.fromisoformat(item)
            except ValueError:
                pass
            else:
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        raise self.fail(path, f"expected an ISO-8601 timestamp, got {item!r}")
