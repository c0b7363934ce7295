"""Comparing what the sidecar answers with what Lago (the emulator) holds."""

from __future__ import annotations

from typing import Any

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from tests.lago_emulator.server import LagoEmulator
from tests.support.processes import Sidecar

View = tuple[str, dict[str, dict[str, Any]]]


def lago_view(lago: LagoEmulator, external_id: str) -> View:
    """The row Lago answers for the external id (active first), and what it grants."""
    state = lago.state
    with state.lock:
        for status in ("active", "pending", "incomplete", "terminated", "canceled"):
            rows = [r for r in state.rows if r.external_id == external_id and r.status == status]
            if rows:
                row = state.find_row(external_id, status)
                if status != "active":
                    return status, {}
                granted = {e["code"]: {p["code"]: p["value"] for p in e["privileges"]} for e in state.resolve(row)}
                return status, granted
    return "missing", {}


def sidecar_view(sidecar: Sidecar, external_id: str) -> View:
    stub = pb_grpc.EntitlementServiceStub(sidecar.channel)
    ents = stub.GetEntitlements(pb.GetEntitlementsRequest(subscription_id=external_id), timeout=5).entitlements
    if not ents.found:
        return "missing", {}
    return ents.status, {f.code: {p.code: _value(p.value) for p in f.privileges} for f in ents.features}


def version_of(sidecar: Sidecar, external_id: str) -> int:
    stub = pb_grpc.EntitlementServiceStub(sidecar.channel)
    request = pb.GetEntitlementsRequest(subscription_id=external_id)
    return int(stub.GetEntitlements(request, timeout=5).entitlements.freshness.version)


def _value(value: pb.Value) -> Any:
    kind = value.WhichOneof("kind")
    return getattr(value, kind) if kind else None


def matches(lago: LagoEmulator, sidecar: Sidecar, external_id: str) -> bool:
    return lago_view(lago, external_id) == sidecar_view(sidecar, external_id)
