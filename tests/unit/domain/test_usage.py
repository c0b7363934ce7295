"""The usage rules: allowance and quota against a requested usage, and what an event's value is."""

from __future__ import annotations

import pytest

from entitlements_sidecar.domain.errors import InvalidArgumentError
from entitlements_sidecar.domain.model import (
    ResolvedFeature,
    ResolvedPrivilege,
    ResolvedSubscription,
    SubscriptionStatus,
    ValueType,
)
from entitlements_sidecar.domain.usage import (
    Aggregation,
    Meter,
    UsageLimits,
    UsageReason,
    decide_usage,
    event_value,
    limits_for,
)

CALLS = Meter("api", "api_calls", Aggregation.COUNT, quota_privilege="limit", allowance_privilege="included")
TOKENS = Meter("llm", "tokens", Aggregation.SUM, quota_privilege="limit", property="tokens")


@pytest.mark.parametrize(
    ("used", "requested", "limits", "allowed", "reason", "remaining", "billable"),
    [
        (0, 10, UsageLimits(100, 1000), True, UsageReason.WITHIN_ALLOWANCE, 990, 0),
        (95, 10, UsageLimits(100, 1000), True, UsageReason.OVER_ALLOWANCE, 895, 5),  # 5 of the 10 are billable
        (150, 10, UsageLimits(100, 1000), True, UsageReason.OVER_ALLOWANCE, 840, 10),
        (995, 10, UsageLimits(100, 1000), False, UsageReason.OVER_QUOTA, 5, 0),  # never a partial use
        (990, 10, UsageLimits(100, 1000), True, UsageReason.OVER_ALLOWANCE, 0, 10),  # exactly the quota
        (5, 10, UsageLimits(None, None), True, UsageReason.WITHIN_ALLOWANCE, None, 0),  # unbounded
        (5, 10, UsageLimits(None, 12), False, UsageReason.OVER_QUOTA, 7, 0),
        (5, 10, None, False, UsageReason.NOT_ENTITLED, None, 0),
    ],
)
def test_a_requested_usage_is_judged_against_allowance_and_quota(
    used: int,
    requested: int,
    limits: UsageLimits | None,
    allowed: bool,
    reason: UsageReason,
    remaining: int | None,
    billable: int,
) -> None:
    decision = decide_usage(used, requested, limits)
    assert (decision.allowed, decision.reason, decision.remaining, decision.billable) == (
        allowed,
        reason,
        remaining,
        billable,
    )
    assert (decision.used, decision.requested) == (used, requested)


def subscription(
    privileges: dict[str, int | str], status: SubscriptionStatus = SubscriptionStatus.ACTIVE
) -> ResolvedSubscription:
    resolved = {
        code: ResolvedPrivilege(code, ValueType.INTEGER if isinstance(v, int) else ValueType.STRING, v)
        for code, v in privileges.items()
    }
    return ResolvedSubscription(
        "sub_a", "acme", "pro", status, None, {"api": ResolvedFeature("api", None, None, resolved)}
    )


def test_limits_come_from_the_subscriptions_privileges() -> None:
    assert limits_for(subscription({"included": 100, "limit": 1000}), CALLS) == UsageLimits(100, 1000)
    assert limits_for(subscription({"limit": 1000}), CALLS) == UsageLimits(None, 1000)
    assert limits_for(subscription({"limit": "lots"}), CALLS) == UsageLimits(None, None)  # not an integer: no bound
    assert limits_for(subscription({"limit": 1}), TOKENS) is None  # the feature is not granted
    assert limits_for(subscription({"limit": 1}, SubscriptionStatus.TERMINATED), CALLS) is None


@pytest.mark.parametrize(
    ("properties", "value"),
    [({"tokens": 12}, 12), ({"tokens": "12"}, 12), ({"tokens": 12.0}, 12), ({"tokens": 0}, 0)],
)
def test_a_sum_event_counts_its_property(properties: dict[str, object], value: int) -> None:
    assert event_value(TOKENS, properties) == value
    assert event_value(CALLS, properties) == 1  # a count event counts one, whatever it carries


@pytest.mark.parametrize(
    ("properties", "problem"),
    [
        ({}, "is required"),
        ({"tokens": -1}, "must not be negative"),
        ({"tokens": 1.5}, "whole number"),
        ({"tokens": float("nan")}, "whole number"),
        ({"tokens": float("inf")}, "whole number"),
        ({"tokens": True}, "not a boolean"),
        ({"tokens": "ten"}, "whole number"),
        ({"tokens": [1]}, "whole number"),
        ({"tokens": 2**60}, "larger than a counter"),
    ],
)
def test_a_value_that_cannot_be_counted_exactly_names_the_field(properties: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidArgumentError, match=problem) as caught:
        event_value(TOKENS, properties, where="events[3].properties")
    assert caught.value.field == "events[3].properties.tokens"
