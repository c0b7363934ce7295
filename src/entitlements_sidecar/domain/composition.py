"""Answers composed from the factorized map's parts (docs/adr/0012).

A subscription's answer is `resolve_subscription(own part, plan, features)`, by definition. The store
keeps each part once, and so does this: the resolved plan (what a subscription with no own rows gets) is
built once per plan and catalog version and shared by every answer on it; a subscription with own rows
gets a new mapping that still shares each feature it does not change. Composition runs on a cache miss,
never on a hit.
"""

from __future__ import annotations

from collections.abc import Mapping

from entitlements_sidecar.domain.model import (
    FeatureDefinition,
    PlanDefinition,
    ResolvedFeature,
    ResolvedSubscription,
    SubscriptionDefinition,
    SubscriptionStatus,
)
from entitlements_sidecar.domain.resolution import resolve_subscription


class PlanFeatures(dict[str, ResolvedFeature]):
    """A plan's resolved features, shared by every answer on the plan (so never mutated). Its type tells
    a cache that holds such an answer that the mapping is not the answer's own."""

    __slots__ = ()


_NO_FEATURES = PlanFeatures()


def composed_version(own: int, plan: int, features: int) -> int:
    """An answer's version: every part's version only grows, and each write takes a version above any
    earlier one (the store's clock), so the largest grows with every change of any part."""
    return max(own, plan, features)


class Composer:
    """Keeps one resolved plan per plan code (for the versions last seen) and composes answers with it."""

    def __init__(self) -> None:
        self._plans: dict[str, tuple[int, int, PlanFeatures]] = {}
        self._codes: dict[str, str] = {}

    def compose(
        self,
        own: SubscriptionDefinition,
        plan: PlanDefinition | None,
        plan_version: int,
        features: Mapping[str, FeatureDefinition],
        features_version: int,
    ) -> ResolvedSubscription:
        shared = self.plan_features(plan, plan_version, features, features_version)
        if own.entitlements or own.removed_features or own.removed_privileges:
            resolved = resolve_subscription(own, plan, features).features
            answer: Mapping[str, ResolvedFeature] = {
                code: _shared_or(shared.get(code), feature) for code, feature in resolved.items()
            }
        else:
            answer = shared
        return ResolvedSubscription(
            external_id=own.external_id,
            external_customer_id=own.external_customer_id,
            plan_code=self._plan_code(own.plan_code),
            status=own.status,
            started_at=own.started_at,
            features=answer,
            billing=own.billing,
        )

    def plan_features(
        self,
        plan: PlanDefinition | None,
        plan_version: int,
        features: Mapping[str, FeatureDefinition],
        features_version: int,
    ) -> PlanFeatures:
        if plan is None:
            return _NO_FEATURES
        code = plan.code
        cached = self._plans.get(code)
        if cached is not None and cached[0] == plan_version and cached[1] == features_version:
            return cached[2]
        bare = SubscriptionDefinition("", "", code, SubscriptionStatus.ACTIVE)
        resolved = PlanFeatures(resolve_subscription(bare, plan, features).features)
        self._plans[code] = (plan_version, features_version, resolved)
        return resolved

    def forget(self) -> None:
        self._plans.clear()
        self._codes.clear()

    def _plan_code(self, code: str) -> str:
        # Every answer on a plan names it: one string per plan in the cache, not one per answer.
        return self._codes.setdefault(code, code)


def _shared_or(shared: ResolvedFeature | None, feature: ResolvedFeature) -> ResolvedFeature:
    return shared if shared is not None and shared == feature else feature
