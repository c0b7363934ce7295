"""JSON for the map's parts: the feature catalog, plans, and each subscription's own part."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from entitlements_sidecar.domain.model import (
    FeatureDefinition,
    PlanDefinition,
    PrivilegeDefinition,
    SubscriptionDefinition,
    SubscriptionStatus,
    ValueType,
)
from entitlements_sidecar.store.billing_codec import decode_billing, encode_billing


def encode_feature(feature: FeatureDefinition) -> bytes:
    return orjson.dumps(
        {
            "code": feature.code,
            "name": feature.name,
            "description": feature.description,
            "privileges": [
                {"code": p.code, "name": p.name, "type": p.value_type.value, "options": list(p.select_options)}
                for p in feature.privileges.values()
            ],
        }
    )


def decode_feature(data: bytes | str) -> FeatureDefinition:
    return _feature(orjson.loads(data))


def _feature(raw: dict[str, Any]) -> FeatureDefinition:
    privileges = {
        p["code"]: PrivilegeDefinition(p["code"], ValueType(p["type"]), p["name"], tuple(p["options"]))
        for p in raw["privileges"]
    }
    return FeatureDefinition(raw["code"], raw["name"], raw["description"], privileges)


def encode_plan(plan: PlanDefinition) -> bytes:
    return orjson.dumps({"code": plan.code, "name": plan.name, "entitlements": plan.entitlements})


def decode_plan(data: bytes | str) -> PlanDefinition:
    raw = orjson.loads(data)
    return PlanDefinition(raw["code"], raw["entitlements"], raw["name"])


def encode_definition(definition: SubscriptionDefinition) -> bytes:
    return orjson.dumps(
        {
            "id": definition.external_id,
            "customer": definition.external_customer_id,
            "plan": definition.plan_code,
            "status": definition.status.value,
            "started_at": definition.started_at.isoformat() if definition.started_at else None,
            "values": definition.entitlements,
            "removed_features": sorted(definition.removed_features),
            "removed_privileges": {k: sorted(v) for k, v in definition.removed_privileges.items()},
            "row": definition.row_id,
            "billing": encode_billing(definition.billing),
        }
    )


def decode_definition(data: bytes | str) -> SubscriptionDefinition:
    raw: dict[str, Any] = orjson.loads(data)
    return SubscriptionDefinition(
        external_id=raw["id"],
        external_customer_id=raw["customer"],
        plan_code=raw["plan"],
        status=SubscriptionStatus(raw["status"]),
        started_at=datetime.fromisoformat(raw["started_at"]) if raw["started_at"] else None,
        entitlements=raw["values"],
        removed_features=frozenset(raw["removed_features"]),
        removed_privileges={k: frozenset(v) for k, v in raw["removed_privileges"].items()},
        row_id=raw.get("row"),  # absent in definitions written before rows were told apart
        billing=decode_billing(raw.get("billing")),
    )


# A map entry's body: the subscription's own part without its id and customer (kept beside it), as a
# list without its empty tail, empty parts as 0 and the start in epoch seconds, so a subscription without
# own rows costs about 30 bytes.
_ENTRY_LENGTH = 8


def encode_entry(definition: SubscriptionDefinition) -> bytes:
    started = definition.started_at
    fields: list[Any] = [
        definition.plan_code,
        definition.status.value,
        (int(started.timestamp()) if started.microsecond == 0 else started.timestamp()) if started else 0,
        definition.entitlements or 0,
        sorted(definition.removed_features) or 0,
        {k: sorted(v) for k, v in definition.removed_privileges.items()} or 0,
        definition.row_id or 0,
        encode_billing(definition.billing) or 0,
    ]
    while fields[-1] == 0:
        fields.pop()
    return orjson.dumps(fields)


def decode_entry(data: bytes | str, external_id: str, customer_id: str) -> SubscriptionDefinition:
    raw: list[Any] = orjson.loads(data)
    plan, status, started, values, removed, removed_privileges, row, billing = raw + [0] * (_ENTRY_LENGTH - len(raw))
    return SubscriptionDefinition(
        external_id=external_id,
        external_customer_id=customer_id,
        plan_code=plan,
        status=SubscriptionStatus(status),
        started_at=datetime.fromtimestamp(started, UTC) if started else None,
        entitlements=values or {},
        removed_features=frozenset(removed or ()),
        removed_privileges={k: frozenset(v) for k, v in (removed_privileges or {}).items()},
        row_id=row or None,
        billing=decode_billing(billing or None),
    )


def encode_features(features: Mapping[str, FeatureDefinition]) -> bytes:
    return b"[" + b",".join(encode_feature(f) for f in features.values()) + b"]"


def decode_features(data: bytes | str) -> dict[str, FeatureDefinition]:
    return {f.code: f for f in map(_feature, orjson.loads(data))}
