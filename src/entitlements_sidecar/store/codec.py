"""Serialization of resolved subscriptions for Redis (compact JSON via orjson).

The encoding is deterministic for equal inputs, so its digest tells whether a write changes
anything (an unchanged write keeps its version and publishes nothing).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import orjson

from entitlements_sidecar.domain.model import (
    ResolvedFeature,
    ResolvedPrivilege,
    ResolvedSubscription,
    SubscriptionStatus,
    ValueType,
)
from entitlements_sidecar.store.billing_codec import decode_billing, encode_billing


def encode(subscription: ResolvedSubscription) -> bytes:
    return orjson.dumps(
        {
            "id": subscription.external_id,
            "customer": subscription.external_customer_id,
            "plan": subscription.plan_code,
            "status": subscription.status.value,
            "started_at": subscription.started_at.isoformat() if subscription.started_at else None,
            "features": [_feature(f) for f in subscription.features.values()],
            "billing": encode_billing(subscription.billing),
        }
    )


def digest(encoded: bytes) -> str:
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()


def decode(data: bytes | str) -> ResolvedSubscription:
    raw = orjson.loads(data)
    started = raw["started_at"]
    return ResolvedSubscription(
        external_id=raw["id"],
        external_customer_id=raw["customer"],
        plan_code=raw["plan"],
        status=SubscriptionStatus(raw["status"]),
        started_at=datetime.fromisoformat(started) if started else None,
        features={f["code"]: _read_feature(f) for f in raw["features"]},
        billing=decode_billing(raw.get("billing")),
    )


def _feature(feature: ResolvedFeature) -> dict[str, Any]:
    return {
        "code": feature.code,
        "name": feature.name,
        "description": feature.description,
        "privileges": [
            {
                "code": p.code,
                "name": p.name,
                "type": p.value_type.value,
                "value": p.value,
                "plan_value": p.plan_value,
                "overridden": p.overridden,
                "options": list(p.select_options),
            }
            for p in feature.privileges.values()
        ],
    }


def _read_feature(raw: dict[str, Any]) -> ResolvedFeature:
    return ResolvedFeature(
        code=raw["code"],
        name=raw["name"],
        description=raw["description"],
        privileges={
            p["code"]: ResolvedPrivilege(
                code=p["code"],
                name=p["name"],
                value_type=ValueType(p["type"]),
                value=p["value"],
                plan_value=p["plan_value"],
                overridden=p["overridden"],
                select_options=tuple(p["options"]),
            )
            for p in raw["privileges"]
        },
    )
