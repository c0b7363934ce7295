"""Protobuf <-> domain mapping. Protobuf types stop here."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from entitlements_sidecar.domain.check import Reason
from entitlements_sidecar.domain.errors import InvalidArgumentError
from entitlements_sidecar.domain.merge import GrantedFeature
from entitlements_sidecar.domain.model import PrivilegeValue, ValueType
from entitlements_sidecar.domain.ports import Origin
from entitlements_sidecar.domain.queries import CACHED, FULLY_CONSISTENT, CheckQuery, Consistency, Subject
from entitlements_sidecar.domain.service import CheckAnswer, EntitlementView, Freshness
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.transport.wire import grpc_status

REASONS: dict[Reason, int] = {
    Reason.ENTITLED: pb.REASON_ENTITLED,
    Reason.FEATURE_NOT_ENTITLED: pb.REASON_FEATURE_NOT_ENTITLED,
    Reason.SUBSCRIPTION_NOT_FOUND: pb.REASON_SUBSCRIPTION_NOT_FOUND,
    Reason.SUBSCRIPTION_NOT_ACTIVE: pb.REASON_SUBSCRIPTION_NOT_ACTIVE,
    Reason.PRIVILEGE_NOT_FOUND: pb.REASON_PRIVILEGE_NOT_FOUND,
    Reason.QUANTITY_EXCEEDS_LIMIT: pb.REASON_QUANTITY_EXCEEDS_LIMIT,
    Reason.VALUE_MISMATCH: pb.REASON_VALUE_MISMATCH,
    Reason.PRIVILEGE_FALSE: pb.REASON_PRIVILEGE_FALSE,
    Reason.CUSTOMER_NOT_FOUND: pb.REASON_CUSTOMER_NOT_FOUND,
    Reason.NO_ACTIVE_SUBSCRIPTION: pb.REASON_NO_ACTIVE_SUBSCRIPTION,
    Reason.REQUEST_TYPE_MISMATCH: pb.REASON_REQUEST_TYPE_MISMATCH,
    Reason.FAILURE_POLICY: pb.REASON_FAILURE_POLICY,
}
VALUE_TYPES: dict[ValueType, int] = {
    ValueType.BOOLEAN: pb.VALUE_TYPE_BOOLEAN,
    ValueType.INTEGER: pb.VALUE_TYPE_INTEGER,
    ValueType.STRING: pb.VALUE_TYPE_STRING,
    ValueType.SELECT: pb.VALUE_TYPE_SELECT,
}
SOURCES: dict[Origin, int] = {
    Origin.MEMORY: pb.SOURCE_MEMORY,
    Origin.REDIS: pb.SOURCE_REDIS,
    Origin.SOURCE: pb.SOURCE_SOURCE,
    Origin.FALLBACK: pb.SOURCE_FALLBACK,
}


# -- requests -------------------------------------------------------------------------------


def consistency_from_proto(message: pb.Consistency, prefix: str = "") -> Consistency:
    which = message.WhichOneof("requirement")
    if which == "min_version":
        return Consistency.at_least(message.min_version, f"{prefix}consistency.min_version")
    if which == "fully_consistent" and message.fully_consistent:
        return FULLY_CONSISTENT
    return CACHED


def check_query_from_proto(request: pb.CheckEntitlementRequest, prefix: str = "") -> CheckQuery:
    subject = Subject.of(request.subscription_id, request.customer_id, prefix)
    return CheckQuery.build(
        subject,
        request.feature_code,
        request.privilege_code or None,
        request.quantity if request.HasField("quantity") else None,
        request.value if request.HasField("value") else None,
        consistency_from_proto(request.consistency, prefix) if request.HasField("consistency") else CACHED,
        prefix,
    )


# -- answers --------------------------------------------------------------------------------


def check_answer_to_proto(answer: CheckAnswer) -> pb.CheckEntitlementResponse:
    decision = answer.decision
    response = pb.CheckEntitlementResponse(
        allowed=decision.allowed,
        reason=REASONS[decision.reason],  # type: ignore[arg-type]
        subscription_id=decision.subscription_id or "",
        freshness=freshness_to_proto(answer.freshness),
    )
    if decision.privilege is not None:
        response.value_type = VALUE_TYPES[decision.privilege.value_type]  # type: ignore[assignment]
        _set_value(response.value, decision.privilege.value)
    return response


def freshness_to_proto(freshness: Freshness) -> pb.Freshness:
    return pb.Freshness(
        version=freshness.version,
        synced_at=timestamp_to_proto(freshness.synced_at),
        source=SOURCES[freshness.origin],  # type: ignore[arg-type]
        stale=freshness.stale,
    )


def view_to_proto(view: EntitlementView) -> pb.EntitlementSet:
    subject = view.subject
    result = pb.EntitlementSet(
        subject=pb.Subject(
            subscription_id=subject.id if subject.kind.value == "subscription" else "",
            customer_id=subject.id if subject.kind.value == "customer" else "",
        ),
        found=view.found,
        freshness=freshness_to_proto(view.freshness),
    )
    if subject.kind.value == "subscription" and view.subscriptions:
        result.status = view.subscriptions[0].subscription.status.value
        result.plan_code = view.subscriptions[0].subscription.plan_code
    for record in view.subscriptions:
        sub = record.subscription
        info = result.subscriptions.add(
            subscription_id=sub.external_id,
            customer_id=sub.external_customer_id,
            plan_code=sub.plan_code,
            status=sub.status.value,
            version=record.version,
        )
        if sub.started_at is not None:
            info.started_at.CopyFrom(timestamp_to_proto(sub.started_at))
    for feature in view.features.values():
        result.features.append(_feature_to_proto(feature))
    return result


def _feature_to_proto(feature: GrantedFeature) -> pb.Feature:
    message = pb.Feature(
        code=feature.code,
        name=feature.name or "",
        description=feature.description or "",
        subscription_id=feature.subscription_id,
    )
    for granted in feature.privileges.values():
        privilege = granted.privilege
        item = message.privileges.add(
            code=privilege.code,
            name=privilege.name or "",
            value_type=VALUE_TYPES[privilege.value_type],
            overridden=privilege.overridden,
            select_options=list(privilege.select_options),
            subscription_id=granted.subscription_id,
        )
        _set_value(item.value, privilege.value)
        if privilege.plan_value is not None:
            _set_value(item.plan_value, privilege.plan_value)
    return message


def _set_value(target: pb.Value, value: PrivilegeValue) -> None:
    # bool first: in Python a bool is also an int.
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    else:
        target.string_value = value


def timestamp_to_proto(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def item_error(exc: BaseException) -> pb.ItemError:
    """One batch item's error, by the one wire table: its gRPC code, message and the field it names."""
    code, message = grpc_status(exc)
    field = exc.field if isinstance(exc, InvalidArgumentError) else ""
    return pb.ItemError(code=code.value[0], message=message, field=field)
