"""Usage in the Python client: the usage an answer carries, and consuming usage (check and record in one
atomic step on the sidecar). See `client.py`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import usage_pb2 as upb


@dataclass(frozen=True, slots=True)
class UsageInfo:
    """A subscription's usage of a metered feature's metric in the current billing period."""

    metric: str
    used: int  # before this request
    requested: int
    allowance: int | None  # None: no such bound
    quota: int | None
    remaining: int | None  # under the quota after this request (before it, when denied)
    billable: int  # units of this request past the allowance
    period_start: datetime
    period_end: datetime  # inclusive
    reconciled_at: datetime | None  # when Lago's own count was last folded in; None: not read for it


@dataclass(frozen=True, slots=True)
class ConsumeResult:
    allowed: bool
    reason: str  # "within_allowance", "over_allowance", "over_quota", "not_entitled"
    recorded: bool  # this call counted the units
    duplicate: bool  # the transaction id was counted before; nothing was added
    usage: UsageInfo


def usage_from_proto(usage: pb.Usage) -> UsageInfo:
    def optional(name: str) -> int | None:
        return int(getattr(usage, name)) if usage.HasField(name) else None  # type: ignore[arg-type]

    return UsageInfo(
        metric=usage.metric_code,
        used=usage.used,
        requested=usage.requested,
        allowance=optional("allowance"),
        quota=optional("quota"),
        remaining=optional("remaining"),
        billable=usage.billable,
        period_start=usage.period_start.ToDatetime(UTC),
        period_end=usage.period_end.ToDatetime(UTC),
        reconciled_at=usage.reconciled_at.ToDatetime(UTC) if usage.HasField("reconciled_at") else None,
    )


def consume_request(feature: str, subscription_id: str, value: int, transaction_id: str) -> upb.ConsumeUsageRequest:
    return upb.ConsumeUsageRequest(
        subscription_id=subscription_id, feature_code=feature, value=value, transaction_id=transaction_id
    )


def consume_result(response: upb.ConsumeUsageResponse) -> ConsumeResult:
    return ConsumeResult(
        allowed=response.allowed,
        reason=str(pb.UsageReason.Name(response.reason)).removeprefix("USAGE_REASON_").lower(),
        recorded=response.recorded,
        duplicate=response.duplicate,
        usage=usage_from_proto(response.usage),
    )
