"""The syncer's definitions in process memory (embedded mode)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from entitlements_sidecar.domain.model import FeatureDefinition, PlanDefinition, SubscriptionDefinition


class MemorySyncState:
    def __init__(self) -> None:
        self._features: dict[str, FeatureDefinition] = {}
        self._plans: dict[str, PlanDefinition] = {}
        self._definitions: dict[str, SubscriptionDefinition] = {}
        self._observed: dict[str, int] = {}  # kept after a delete, so an older read cannot resurrect it

    async def features(self) -> dict[str, FeatureDefinition]:
        return dict(self._features)

    async def replace_features(self, features: Mapping[str, FeatureDefinition]) -> None:
        self._features = dict(features)

    async def plan(self, code: str) -> PlanDefinition | None:
        return self._plans.get(code)

    async def put_plan(self, plan: PlanDefinition) -> None:
        self._plans[plan.code] = plan

    async def definition(self, external_id: str) -> SubscriptionDefinition | None:
        return self._definitions.get(external_id)

    async def definitions(self, external_ids: Sequence[str]) -> dict[str, SubscriptionDefinition]:
        return {i: self._definitions[i] for i in external_ids if i in self._definitions}

    async def put_definition(self, definition: SubscriptionDefinition, observed_ms: int) -> bool:
        if self._observed.get(definition.external_id, -1) > observed_ms:
            return False
        self._observed[definition.external_id] = observed_ms
        self._definitions[definition.external_id] = definition
        return True

    async def delete_definition(self, external_id: str, observed_ms: int) -> bool:
        if self._observed.get(external_id, -1) > observed_ms:
            return False
        self._observed[external_id] = observed_ms
        self._definitions.pop(external_id, None)
        return True

    async def on_plan(self, plan_code: str) -> set[str]:
        return {i for i, d in self._definitions.items() if d.plan_code == plan_code}

    async def definition_ids(self) -> set[str]:
        return set(self._definitions)
