from __future__ import annotations

from entitlements_sidecar.domain.merge import by_recency, merge_features
from entitlements_sidecar.domain.model import SubscriptionStatus
from tests.support.builders import STARTER, subscription


def test_merge_picks_values_per_type_and_records_granting_subscription() -> None:
    old = subscription("old", entitlements={"seats": {"max": 40}}, started="2025-01-01")
    new = subscription("new", plan=STARTER, started="2026-10-01")
    merged = merge_features([new, old])
    assert set(merged) == {"seats", "sso", "api"}
    seats = merged["seats"].privileges
    assert (seats["max"].privilege.value, seats["max"].subscription_id) == (40, "old")
    assert (seats["root"].privilege.value, seats["root"].subscription_id) == (True, "old")
    assert merged["seats"].subscription_id == "new"  # most recent subscription with the feature


def test_merge_ignores_inactive() -> None:
    pending = subscription("p", status=SubscriptionStatus.PENDING)
    assert merge_features([pending]) == {}


def test_recency_order_puts_unknown_start_last_and_is_stable() -> None:
    a = subscription("a", started=None)
    b = subscription("b", started="2026-01-01")
    c = subscription("c", started="2026-01-01")
    d = subscription("d", started="2026-05-01")
    assert [s.external_id for s in by_recency([a, b, c, d])] == ["d", "b", "c", "a"]
