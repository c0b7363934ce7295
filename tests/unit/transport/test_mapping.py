from __future__ import annotations

from datetime import UTC, datetime

import pytest

from entitlements_sidecar.domain.check import Decision, Reason
from entitlements_sidecar.domain.model import ResolvedPrivilege, ValueType
from entitlements_sidecar.domain.ports import Origin
from entitlements_sidecar.domain.queries import ConsistencyMode
from entitlements_sidecar.domain.service import CheckAnswer, Freshness
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.transport.grpc import mapping


def test_every_domain_enum_has_a_proto_value() -> None:
    assert set(mapping.REASONS) == set(Reason)
    assert set(mapping.VALUE_TYPES) == set(ValueType)
    assert set(mapping.SOURCES) == set(Origin)
    assert len(set(mapping.REASONS.values())) == len(Reason)


def test_request_mapping_keeps_presence() -> None:
    request = pb.CheckEntitlementRequest(subscription_id="s", feature_code="f", privilege_code="p", quantity=0)
    query = mapping.check_query_from_proto(request)
    assert (query.quantity, query.value) == (0, None)
    request = pb.CheckEntitlementRequest(
        customer_id="c", feature_code="f", privilege_code="p", value="", consistency=pb.Consistency(min_version=4)
    )
    query = mapping.check_query_from_proto(request)
    assert (query.value, query.consistency.mode, query.consistency.min_version) == ("", ConsistencyMode.MIN_VERSION, 4)
    full = mapping.check_query_from_proto(
        pb.CheckEntitlementRequest(
            subscription_id="s", feature_code="f", consistency=pb.Consistency(fully_consistent=True)
        )
    )
    assert full.consistency.mode is ConsistencyMode.FULL


@pytest.mark.parametrize(
    ("value", "kind"),
    [(True, "bool_value"), (False, "bool_value"), (0, "int_value"), (2**62, "int_value"), ("okta", "string_value")],
)
def test_values_keep_their_type(value: bool | int | str, kind: str) -> None:
    privilege = ResolvedPrivilege("p", ValueType.STRING if isinstance(value, str) else ValueType.INTEGER, value)
    answer = CheckAnswer(
        Decision(True, Reason.ENTITLED, "s", privilege),
        Freshness(3, datetime(2026, 1, 1, tzinfo=UTC), Origin.REDIS, False),
    )
    message = mapping.check_answer_to_proto(answer)
    assert message.value.WhichOneof("kind") == kind
    assert getattr(message.value, kind) == value
    assert (message.freshness.version, message.freshness.source) == (3, pb.SOURCE_REDIS)
    assert message.freshness.synced_at.ToDatetime(tzinfo=UTC) == datetime(2026, 1, 1, tzinfo=UTC)
