"""Usage answers on the wire (`entitlements.v1.Usage`), for UsageService and for checks, Get and Watch of
EntitlementService, and how a usage decision turns a check's answer."""

from __future__ import annotations

from datetime import UTC, datetime

from entitlements_sidecar.domain.errors import InvalidArgumentError, StoreUnavailableError
from entitlements_sidecar.domain.usage import UsageReason
from entitlements_sidecar.domain.usage_service import UsageAnswer, UsageService
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.transport.grpc.mapping import timestamp_to_proto

USAGE_REASONS = {
    UsageReason.WITHIN_ALLOWANCE: pb.USAGE_REASON_WITHIN_ALLOWANCE,
    UsageReason.OVER_ALLOWANCE: pb.USAGE_REASON_OVER_ALLOWANCE,
    UsageReason.OVER_QUOTA: pb.USAGE_REASON_OVER_QUOTA,
    UsageReason.NOT_ENTITLED: pb.USAGE_REASON_NOT_ENTITLED,
    UsageReason.FAILURE_POLICY: pb.USAGE_REASON_FAILURE_POLICY,
}


def usage_to_proto(answer: UsageAnswer) -> pb.Usage:
    decision = answer.decision
    reconciled = answer.reconciled_ms
    return pb.Usage(
        metric_code=answer.metric_code,
        used=decision.used,
        requested=decision.requested,
        allowance=decision.allowance,
        quota=decision.quota,
        remaining=decision.remaining,
        billable=decision.billable,
        period_start=timestamp_to_proto(answer.period.start),
        period_end=timestamp_to_proto(answer.period.end),
        reconciled_at=timestamp_to_proto(datetime.fromtimestamp(reconciled / 1000, UTC)) if reconciled else None,
        fallback=answer.fallback,
    )


def apply_usage(response: pb.CheckEntitlementResponse, answer: UsageAnswer) -> None:
    """A check of an entitled subject with a requested usage: the usage decides, and is shown."""
    response.usage.CopyFrom(usage_to_proto(answer))
    reason = answer.decision.reason
    if answer.fallback:  # flagged as today's failure policy answers are
        response.allowed, response.reason = answer.decision.allowed, pb.REASON_FAILURE_POLICY
        response.freshness.stale, response.freshness.source = True, pb.SOURCE_FALLBACK
    elif reason is UsageReason.OVER_QUOTA:
        response.allowed, response.reason = False, pb.REASON_USAGE_OVER_QUOTA
    elif reason is UsageReason.OVER_ALLOWANCE:
        response.reason = pb.REASON_USAGE_OVER_ALLOWANCE


class EntitlementUsage:
    """What EntitlementService adds for metered features: a check with `requested_usage` is also judged by
    the usage (the granting subscription's, so a customer's check counts on the subscription that grants
    the feature), and Get and Watch show each metered feature's usage so far."""

    def __init__(self, usage: UsageService | None) -> None:
        self._usage = usage

    def validate(self, request: pb.CheckEntitlementRequest, prefix: str = "") -> None:
        if not request.HasField("requested_usage"):
            return
        field = f"{prefix}requested_usage"
        if self._usage is None or not self._usage.metered(request.feature_code):
            raise InvalidArgumentError(field, f"feature {request.feature_code!r} has no meter")
        if request.requested_usage <= 0:
            raise InvalidArgumentError(field, f"must be a positive whole number, got {request.requested_usage}")

    async def apply(self, request: pb.CheckEntitlementRequest, response: pb.CheckEntitlementResponse) -> None:
        """After the check (and `validate`): an entitled answer is judged by the usage too."""
        if self._usage is None or not request.HasField("requested_usage") or not response.allowed:
            return
        answer = await self._usage.check(response.subscription_id, request.feature_code, request.requested_usage)
        apply_usage(response, answer)

    async def annotate(self, entitlements: pb.EntitlementSet) -> None:
        """Each metered feature's usage so far; left unset when the counters cannot be read (the answer
        about entitlements stays good)."""
        if self._usage is None:
            return
        for feature in entitlements.features:
            if feature.subscription_id and self._usage.metered(feature.code):
                try:
                    answer = await self._usage.current(feature.subscription_id, feature.code)
                except StoreUnavailableError:
                    continue
                feature.usage.CopyFrom(usage_to_proto(answer))
