"""The conformance cases (conformance/cases.json), each state loaded through the sidecar's own read path.

The domain runner checks a case's answer from ReadService; scripts/gen_vectors.py renders each case's
subject as the EntitlementSet a Watch stream would send (conformance/vectors.json), which the clients'
local evaluators read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from entitlements_sidecar.domain.errors import InvalidArgumentError
from entitlements_sidecar.domain.map_status import MapStatus
from entitlements_sidecar.domain.queries import CheckQuery, Subject
from entitlements_sidecar.domain.service import CheckAnswer, ReadService
from entitlements_sidecar.sources.catalog_file import parse_catalog
from entitlements_sidecar.store.memory import MemoryStore
from entitlements_sidecar.transport.grpc.mapping import view_to_proto

REPO = Path(__file__).resolve().parents[2]
CASES = REPO / "conformance" / "cases.json"
VECTORS = REPO / "conformance" / "vectors.json"
_MOMENT = datetime(2026, 12, 1, tzinfo=UTC)  # the store's clock: the rendered states do not move


@dataclass(frozen=True)
class Case:
    name: str
    state: dict[str, Any]  # the catalog file's shape
    stale: bool
    check: dict[str, Any]
    expect: dict[str, Any]


def cases() -> list[Case]:
    document = json.loads(CASES.read_text())
    return [
        Case(item["name"], document["states"][item["state"]], item.get("stale", False), item["check"], item["expect"])
        for item in document["cases"]
    ]


class _NoSource:
    """The cases read what the store holds (cached consistency): a read-through would be a defect."""

    async def refresh_subscription(self, external_id: str) -> None:
        raise AssertionError(f"a conformance case read through to the source ({external_id})")

    async def refresh_customer(self, customer_id: str) -> None:
        raise AssertionError(f"a conformance case read through to the source ({customer_id})")


async def service_for(case: Case) -> ReadService:
    """A ReadService over a memory store holding the case's state (provisional, so stale, if it says so)."""
    catalog = parse_catalog(json.dumps(case.state).encode(), case.name, json=True)
    store = MemoryStore(clock=lambda: _MOMENT)
    await store.start()
    await store.put_features(catalog.features)
    for plan in catalog.plans.values():
        await store.put_plan(plan)
    await store.put_subscriptions(list(catalog.subscriptions.values()), provisional=case.stale)
    return ReadService(store, _NoSource(), MapStatus(complete=True))


def subject(check: dict[str, Any]) -> Subject:
    return Subject.of(check.get("subscription_id", ""), check.get("customer_id", ""))


def query(check: dict[str, Any]) -> CheckQuery:
    return CheckQuery.build(
        subject(check), check["feature"], check.get("privilege"), check.get("quantity"), check.get("value")
    )


def answer(result: CheckAnswer) -> dict[str, Any]:
    """A domain answer in the cases' terms."""
    decision = result.decision
    return {
        "allowed": decision.allowed,
        "reason": decision.reason.value,
        "value": None if decision.privilege is None else decision.privilege.value,
        "subscription_id": decision.subscription_id or "",
        "stale": result.freshness.stale,
    }


def expected(case: Case) -> dict[str, Any]:
    if "error" in case.expect:  # a check the sidecar rejects: a client does not answer it locally either
        return dict(case.expect)
    return {"stale": False, **case.expect}


def rejected(check: dict[str, Any]) -> dict[str, Any] | None:
    """The error the sidecar gives a malformed check, in the cases' terms, or None for a well-formed one."""
    try:
        query(check)
    except InvalidArgumentError as exc:
        return {"error": "invalid_argument", "field": exc.field}
    return None


def as_json(answer: dict[str, Any]) -> str:
    """An answer compared as JSON: true and 1 differ there (in Python, True == 1)."""
    return json.dumps(answer, sort_keys=True)


async def vector(case: Case) -> dict[str, Any]:
    """The case with its state as the EntitlementSet (proto JSON) a Watch on its subject sends."""
    service = await service_for(case)
    check = case.check
    if check.get("subscription_id") and check.get("customer_id"):  # malformed: the subscription's state
        check = {**check, "customer_id": ""}
    message = view_to_proto(await service.get(subject(check)))
    # Versions and sync times are the store's counters and clock, not the case's: left out.
    message.freshness.ClearField("version")
    message.freshness.ClearField("synced_at")
    for info in message.subscriptions:
        info.ClearField("version")
    state = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return {"name": case.name, "state": state, "check": case.check, "expect": expected(case)}
