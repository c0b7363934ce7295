"""Usage rules: meters bind a feature to a Lago billable metric, and a requested usage is judged against
the subscription's allowance (included units: beyond it usage is allowed and billable) and quota (the hard
limit: beyond it usage is denied).

Lago keeps no link between a privilege and a metric (docs/lago-usage.md), so a meter is our configuration:
which integer privilege of the feature is the quota, which is the allowance, and how an event's value is
aggregated. Only `count` and `sum` are additive per event, so only they can be counted locally.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from entitlements_sidecar.domain.errors import InvalidArgumentError
from entitlements_sidecar.domain.model import ResolvedSubscription, ValueType
from entitlements_sidecar.domain.periods import Period


class Aggregation(enum.StrEnum):
    COUNT = "count"  # every event counts 1
    SUM = "sum"  # every event counts the integer value of its `property`


class OnFailure(enum.StrEnum):
    """What a meter answers when the shared counters cannot be reached."""

    FAIL_CLOSED = "fail_closed"  # deny uses (a hard quota is never passed); reports are UNAVAILABLE
    FAIL_OPEN = "fail_open"  # allow, count in this sidecar, and add it to the shared counters once back


@dataclass(frozen=True, slots=True)
class Meter:
    feature_code: str
    metric_code: str  # the Lago billable metric's code
    aggregation: Aggregation
    quota_privilege: str | None = None  # an integer privilege of the feature: the hard limit
    allowance_privilege: str | None = None  # an integer privilege of the feature: the included units
    property: str | None = None  # for SUM: the event property that carries the value
    on_failure: OnFailure = OnFailure.FAIL_CLOSED


@dataclass(frozen=True, slots=True)
class Meters:
    """Every meter, by the metric it counts and by the feature it meters (one meter each)."""

    by_metric: Mapping[str, Meter] = field(default_factory=dict)
    by_feature: Mapping[str, Meter] = field(default_factory=dict)


class UsageReason(enum.Enum):
    WITHIN_ALLOWANCE = "within_allowance"  # allowed, included
    OVER_ALLOWANCE = "over_allowance"  # allowed, the units past the allowance are billable
    OVER_QUOTA = "over_quota"  # denied: it would pass the hard limit
    NOT_ENTITLED = "not_entitled"  # denied: the subject lacks the feature
    FAILURE_POLICY = "failure_policy"  # the counters could not be reached: the meter's policy answered


@dataclass(frozen=True, slots=True)
class UsageLimits:
    """The subscription's bounds for one meter; None: no such bound (the privilege has no value)."""

    allowance: int | None
    quota: int | None


@dataclass(frozen=True, slots=True)
class UsageDecision:
    allowed: bool
    reason: UsageReason
    used: int
    requested: int
    allowance: int | None
    quota: int | None
    remaining: int | None  # under the quota after this usage, or None without a quota
    billable: int  # units of this request past the allowance


def limits_for(subscription: ResolvedSubscription, meter: Meter) -> UsageLimits | None:
    """The bounds a subscription has for a meter; None when it is not entitled to the meter's feature."""
    if not subscription.grants:
        return None
    feature = subscription.features.get(meter.feature_code)
    if feature is None:
        return None

    def bound(code: str | None) -> int | None:
        privilege = feature.privileges.get(code) if code else None
        if privilege is None or privilege.value_type is not ValueType.INTEGER or isinstance(privilege.value, bool):
            return None
        return int(privilege.value)

    return UsageLimits(bound(meter.allowance_privilege), bound(meter.quota_privilege))


def decide_usage(used: int, requested: int, limits: UsageLimits | None) -> UsageDecision:
    """May `requested` more units be used, given `used` so far in the period?"""
    if limits is None:
        return UsageDecision(False, UsageReason.NOT_ENTITLED, used, requested, None, None, None, 0)
    after = used + requested
    quota, allowance = limits.quota, limits.allowance
    if quota is not None and after > quota:
        return UsageDecision(False, UsageReason.OVER_QUOTA, used, requested, allowance, quota, max(0, quota - used), 0)
    remaining = None if quota is None else quota - after
    if allowance is not None and after > allowance:
        billable = after - max(allowance, used)
        return UsageDecision(True, UsageReason.OVER_ALLOWANCE, used, requested, allowance, quota, remaining, billable)
    return UsageDecision(True, UsageReason.WITHIN_ALLOWANCE, used, requested, allowance, quota, remaining, 0)


def event_value(meter: Meter, properties: Mapping[str, object], where: str = "properties") -> int:
    """The units one event adds: 1 for a count meter, the integer property for a sum meter.
    InvalidArgumentError naming the property under `where` for anything that cannot be counted exactly."""
    if meter.aggregation is Aggregation.COUNT:
        return 1
    assert meter.property is not None  # a sum meter names its property (checked where meters are loaded)
    name = f"{where}.{meter.property}"
    raw = properties.get(meter.property)
    if raw is None:
        raise InvalidArgumentError(name, f"is required by metric {meter.metric_code!r} (sum of {meter.property})")
    if isinstance(raw, bool):
        raise InvalidArgumentError(name, "must be a whole number, not a boolean")
    if isinstance(raw, float):
        if not math.isfinite(raw) or not raw.is_integer():
            raise InvalidArgumentError(name, f"must be a whole number, got {raw!r}")
        raw = int(raw)
    if isinstance(raw, str):
        text = raw.strip()
        if not text.lstrip("-").isdigit():
            raise InvalidArgumentError(name, f"must be a whole number, got {raw[:40]!r}")
        raw = int(text)
    if not isinstance(raw, int):
        raise InvalidArgumentError(name, f"must be a whole number, got {type(raw).__name__}")
    if raw < 0:
        raise InvalidArgumentError(name, f"must not be negative, got {raw}")
    if raw > 2**53:
        raise InvalidArgumentError(name, "is larger than a counter holds exactly")
    return raw


# A retry with the same transaction id within this is a duplicate, not a second use (every counter keeps it).
TRANSACTION_WINDOW_SECONDS = 7 * 86_400


@dataclass(frozen=True, slots=True)
class UsageKey:
    """One counter: a subscription's usage of a metric in the billing period that starts at `period_start_ms`.
    A new period is a new key, so counters roll over without a job."""

    subscription_id: str
    metric_code: str
    period_start_ms: int


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """One recorded use as the billing source is told of it (a Lago event): counted and queued for
    forwarding in one step, so what was counted is what Lago is sent."""

    transaction_id: str
    subscription_id: str
    metric_code: str
    timestamp: float  # unix seconds
    properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Counted:
    """A period's counter as read."""

    used: int
    reconciled_ms: int | None = None  # when the source's usage was last folded in (seeded or healed); None: never


@dataclass(frozen=True, slots=True)
class Recorded:
    used: int  # the period's usage after the call
    recorded: bool  # False: refused by the limit, or a transaction already recorded
    duplicate: bool  # the transaction id was recorded before: nothing was added again
    unseeded: bool = False  # refused: the period has no counter yet (seed it from the source, then retry)
    reconciled_ms: int | None = None
    fallback: bool = False  # the shared counters were unreachable: counted in this sidecar, added later


class UsageCounter(Protocol):
    async def read(self, key: UsageKey) -> Counted | None:
        """The period's counter; None when it has none yet (nothing counted, nothing seeded)."""
        ...

    async def record(
        self,
        key: UsageKey,
        value: int,
        transaction_id: str,
        limit: int | None = None,
        event: UsageEvent | None = None,
        seeded_only: bool = False,
    ) -> Recorded:
        """Add `value` unless `transaction_id` was recorded for this subscription before; with `limit`, only
        if the total stays within it; with `event`, queue it in the outbox when (and only when) it is added;
        with `seeded_only`, only if the period's counter exists (else `unseeded`). One atomic step across
        every process sharing the counter."""
        ...

    async def raise_to(self, key: UsageKey, units: int, at_ms: int | None) -> tuple[int | None, int]:
        """Fold in the source's count: the counter becomes at least `units` (created if missing, never
        lowered) and, with `at_ms`, records it as its reconciliation time. Returns (before or None, after)."""
        ...

    async def active(self, since_ms: int) -> list[UsageKey]:
        """Counters something was recorded to since `since_ms` (what healing reads the source for)."""
        ...


class UsageSource(Protocol):
    """The billing source's own count (Lago's current usage), to seed a new period's counter and to heal
    counters with usage that reached the source by other paths."""

    async def units(self, subscription: ResolvedSubscription, metric_code: str, period: Period) -> int | None:
        """The source's count of the metric in `period`; None when it cannot say (unreachable, or its current
        period is another one). 0 for a subscription the source counts nothing for."""
        ...


class UsageFallback(Protocol):
    """Where a fail-open meter counts while the shared counters cannot be reached (store/usage_spill.py)."""

    async def read(self, key: UsageKey) -> Counted | None: ...

    async def record(self, key: UsageKey, value: int, transaction_id: str, event: UsageEvent | None) -> Recorded:
        """Count here, to be added to the shared counters later. StoreUnavailableError when full."""
        ...
