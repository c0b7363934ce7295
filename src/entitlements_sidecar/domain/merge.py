"""Merging a customer's active subscriptions into one view.

Lago defines no customer-level rule, so we chose (and document in the README):
- a feature is entitled if any active subscription has it;
- integer privilege -> the maximum value; boolean -> OR (true if any is true);
- string/select -> the value of the most recently started active subscription that has it.
Ties are broken by the most recent `started_at`, then by external id, so answers are stable.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from entitlements_sidecar.domain.model import ResolvedPrivilege, ResolvedSubscription, ValueType


@dataclass(frozen=True, slots=True)
class GrantedPrivilege:
    privilege: ResolvedPrivilege
    subscription_id: str


@dataclass(frozen=True, slots=True)
class GrantedFeature:
    code: str
    name: str | None
    description: str | None
    subscription_id: str
    privileges: dict[str, GrantedPrivilege] = field(default_factory=dict)


def by_recency(subscriptions: Iterable[ResolvedSubscription]) -> list[ResolvedSubscription]:
    """Most recently started first; unknown start dates last."""

    def key(s: ResolvedSubscription) -> tuple[bool, float, str]:
        started: datetime | None = s.started_at
        return (started is None, -started.timestamp() if started else 0.0, s.external_id)

    return sorted(subscriptions, key=key)


def pick_privilege(
    candidates: Sequence[ResolvedSubscription], feature_code: str, privilege_code: str
) -> tuple[ResolvedPrivilege, str] | None:
    """Choose the privilege value that a customer gets. `candidates` must be ordered by recency."""
    found = [
        (priv, s.external_id)
        for s in candidates
        if (priv := s.features[feature_code].privileges.get(privilege_code)) is not None
    ]
    if not found:
        return None
    value_type = found[0][0].value_type
    if value_type is ValueType.INTEGER:
        best = found[0]
        for item in found[1:]:
            if int(item[0].value) > int(best[0].value):
                best = item
        return best
    if value_type is ValueType.BOOLEAN:
        return next((item for item in found if item[0].value is True), found[0])
    return found[0]


def merge_features(subscriptions: Sequence[ResolvedSubscription]) -> dict[str, GrantedFeature]:
    """Every feature granted by the active subscriptions, with merged privilege values."""
    active = by_recency(s for s in subscriptions if s.grants)
    merged: dict[str, GrantedFeature] = {}
    for sub in active:
        for code, feature in sub.features.items():
            if code in merged:
                continue
            holders = [s for s in active if code in s.features]
            privilege_codes: list[str] = []
            for holder in holders:
                privilege_codes.extend(p for p in holder.features[code].privileges if p not in privilege_codes)
            granted = GrantedFeature(code, feature.name, feature.description, sub.external_id)
            for privilege_code in privilege_codes:
                picked = pick_privilege(holders, code, privilege_code)
                if picked is not None:
                    granted.privileges[privilege_code] = GrantedPrivilege(*picked)
            merged[code] = granted
    return merged


def subscription_features(subscription: ResolvedSubscription) -> dict[str, GrantedFeature]:
    """A single subscription's features in the merged shape (nothing if it is not active)."""
    return merge_features([subscription])
