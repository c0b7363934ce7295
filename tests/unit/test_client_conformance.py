"""The Python client's local answers (client.decide_locally behind the watch cache) against the
conformance vectors: a watched subject's EntitlementSet, as the sidecar sends it (conformance/vectors.json),
and a check, answered in-process the way the sidecar answers it (tests/unit/domain/test_conformance.py),
or, when the sidecar would reject it, not answered locally."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import json_format

from entitlements_sidecar.client import Check, well_formed
from entitlements_sidecar.client_local import LocalCache
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from tests.support.conformance import VECTORS, as_json

VECTORS_READ: list[dict[str, Any]] = json.loads(VECTORS.read_text())["vectors"]


def local_check(check: dict[str, Any]) -> Check:
    return Check(
        feature=check["feature"],
        subscription_id=check.get("subscription_id", ""),
        customer_id=check.get("customer_id", ""),
        privilege=check.get("privilege", ""),
        quantity=check.get("quantity"),
        value=check.get("value"),
    )


@pytest.mark.parametrize("vector", VECTORS_READ, ids=[v["name"] for v in VECTORS_READ])
def test_vector(vector: dict[str, Any]) -> None:
    """Through the watch cache's lookup, the path a watched subject's check takes (memo included)."""
    state = json_format.ParseDict(vector["state"], pb.EntitlementSet())
    cache = LocalCache()
    cache.update(state)
    check = local_check(vector["check"])
    if "error" in vector["expect"]:
        assert cache.lookup(check) is None  # asked of the sidecar, which rejects it naming the field
        assert not well_formed(check)
        return
    for _ in range(2):  # evaluated, then from the memo
        result = cache.lookup(check)
        assert result is not None
        got = {
            "allowed": result.allowed,
            "reason": result.reason,
            "value": result.value,
            "subscription_id": result.subscription_id,
            "stale": result.stale,
        }
        assert as_json(got) == as_json(vector["expect"])
        assert result.source == "local"
