"""The Python client's values: a check, its answer, and a batch item's error."""

from __future__ import annotations

from dataclasses import dataclass

from entitlements_sidecar.client_usage import UsageInfo
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb

PrivilegeValue = bool | int | str | None


@dataclass(frozen=True, slots=True)
class CheckResult:
    allowed: bool
    reason: str  # "entitled", "quantity_exceeds_limit", ... (the proto enum without its prefix, lower case)
    value: PrivilegeValue = None
    subscription_id: str = ""
    version: int = 0
    source: str = ""  # "memory", "redis", "source", "fallback", or "local" for a watched subject
    stale: bool = False
    usage: UsageInfo | None = None  # with requested_usage: the metered feature's usage


@dataclass(frozen=True, slots=True)
class CheckError:
    code: int
    message: str
    field: str


@dataclass(frozen=True, slots=True)
class Check:
    feature: str
    subscription_id: str = ""
    customer_id: str = ""
    privilege: str = ""
    quantity: int | None = None
    value: str | None = None
    requested_usage: int | None = None

    def request(self) -> pb.CheckEntitlementRequest:
        request = pb.CheckEntitlementRequest(
            subscription_id=self.subscription_id,
            customer_id=self.customer_id,
            feature_code=self.feature,
            privilege_code=self.privilege,
        )
        if self.quantity is not None:
            request.quantity = self.quantity
        if self.value is not None:
            request.value = self.value
        if self.requested_usage is not None:
            request.requested_usage = self.requested_usage
        return request


def value_of(message: pb.Value) -> PrivilegeValue:
    kind = message.WhichOneof("kind")
    return getattr(message, kind) if kind else None
