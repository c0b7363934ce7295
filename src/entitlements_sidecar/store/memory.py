"""In-process store: the embedded default (one process, no Redis). Factorized like the Redis map
(docs/adr/0012): the catalog once, each plan once, each subscription's own part; answers composed."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from entitlements_sidecar.domain.composition import Composer, composed_version
from entitlements_sidecar.domain.model import FeatureDefinition, PlanDefinition, SubscriptionDefinition
from entitlements_sidecar.domain.ports import (
    Change,
    ChangeKind,
    ChangeListener,
    Origin,
    PutResult,
    StoredCustomer,
    StoredOwnPart,
    StoredSubscription,
)
from entitlements_sidecar.store.listeners import Listeners


@dataclass(slots=True)
class _Slot:
    version: int = 0
    observed_ms: int = 0
    own: SubscriptionDefinition | None = None  # None once deleted: the version survives as a tombstone
    synced: datetime | None = None
    provisional: bool = False


@dataclass(slots=True)
class _Customer:
    version: int = 0
    members: set[str] = field(default_factory=set)


class MemoryStore:
    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._subscriptions: dict[str, _Slot] = {}
        self._order: list[str] = []  # every id ever stored, in the order it was first stored
        self._customers: dict[str, _Customer] = {}
        self._plans: dict[str, tuple[int, PlanDefinition]] = {}
        self._features: tuple[int, dict[str, FeatureDefinition]] = (0, {})
        self._versions = 0  # one counter for every part: a later write always has a higher version
        self._composer = Composer()
        self._listeners = Listeners()
        self._clock = clock

    async def start(self) -> None:
        # In-process changes cannot be missed: the feed is up from the start.
        self._listeners.emit(Change(ChangeKind.FEED_RESET))

    async def close(self) -> None:
        return None

    async def get_subscription(self, external_id: str, min_version: int = 0) -> StoredSubscription | None:
        slot = self._subscriptions.get(external_id)
        if slot is None or slot.own is None or slot.synced is None:
            return None
        plan_version, plan = self._plans.get(slot.own.plan_code, (0, None))
        features_version, features = self._features
        answer = self._composer.compose(slot.own, plan, plan_version, features, features_version)
        version = composed_version(slot.version, plan_version, features_version)
        return StoredSubscription(answer, version, slot.synced, Origin.MEMORY, slot.provisional)

    async def get_subscriptions(self, external_ids: Sequence[str]) -> list[StoredSubscription | None]:
        return [await self.get_subscription(i) for i in external_ids]

    async def get_customer(self, customer_id: str, min_version: int = 0) -> StoredCustomer | None:
        customer = self._customers.get(customer_id)
        if customer is None or not customer.members:
            return None
        return StoredCustomer(customer_id, tuple(sorted(customer.members)), customer.version, Origin.MEMORY)

    async def definition(self, external_id: str) -> SubscriptionDefinition | None:
        slot = self._subscriptions.get(external_id)
        return slot.own if slot else None

    async def own_parts(self, external_ids: Sequence[str]) -> list[StoredOwnPart | None]:
        slots = [self._subscriptions.get(i) for i in external_ids]
        return [
            StoredOwnPart(slot.own, slot.observed_ms, slot.provisional) if slot and slot.own else None for slot in slots
        ]

    async def id_page(self, cursor: int, count: int) -> tuple[int, list[str]]:
        # Slots are never removed (tombstones stay), so a position in their order never moves.
        ids = self._order[cursor : cursor + count]
        following = cursor + len(ids)
        live = [i for i in ids if self._subscriptions[i].own is not None]
        return (following if following < len(self._order) else 0), live

    async def plan(self, code: str) -> PlanDefinition | None:
        found = self._plans.get(code)
        return found[1] if found else None

    async def features(self) -> dict[str, FeatureDefinition]:
        return dict(self._features[1])

    async def put_subscription(self, definition: SubscriptionDefinition, observed_ms: int = 0) -> int:
        [result] = await self.put_subscriptions([definition], observed_ms)
        return result.version

    async def put_subscriptions(
        self, definitions: Sequence[SubscriptionDefinition], observed_ms: int = 0, provisional: bool = False
    ) -> list[PutResult]:
        return [self._put(definition, observed_ms or self._now_ms(), provisional) for definition in definitions]

    async def delete_subscription(self, external_id: str, observed_ms: int = 0) -> int | None:
        slot = self._subscriptions.get(external_id)
        observed = observed_ms or self._now_ms()
        if slot is None or slot.observed_ms > observed:
            return None
        slot.observed_ms = observed
        if slot.own is None:
            return None
        customer_id = slot.own.external_customer_id
        slot.version = self._next(slot.version)
        slot.own, slot.provisional = None, False
        self._customers[customer_id].members.discard(external_id)
        self._announce(external_id, slot.version, {customer_id})
        return slot.version

    async def put_plan(self, plan: PlanDefinition) -> int:
        current = self._plans.get(plan.code)
        if current is not None and current[1] == plan:
            return current[0]
        version = self._next(current[0] if current else 0)
        self._plans[plan.code] = (version, plan)
        self._listeners.emit(Change(ChangeKind.PLAN, plan.code, version))
        return version

    async def put_features(self, features: Mapping[str, FeatureDefinition]) -> int:
        version, current = self._features
        if current == dict(features):
            return version
        self._features = (self._next(version), dict(features))
        self._listeners.emit(Change(ChangeKind.FEATURES, "", self._features[0]))
        return self._features[0]

    async def subscription_ids(self) -> set[str]:
        return {i for i, slot in self._subscriptions.items() if slot.own is not None}

    def add_listener(self, listener: ChangeListener) -> Callable[[], None]:
        return self._listeners.add(listener)

    def _put(self, own: SubscriptionDefinition, observed: int, provisional: bool) -> PutResult:
        slot = self._subscriptions.get(own.external_id)
        if slot is None:
            slot = self._subscriptions[own.external_id] = _Slot()
            self._order.append(own.external_id)
        if slot.observed_ms > observed:
            return PutResult(slot.version, False, True)
        if provisional and slot.own is not None:
            return PutResult(slot.version, False)  # what is stored says more than a listing
        slot.observed_ms = observed
        slot.synced = self._clock()  # when the source last said so, as the Redis map keeps it
        previous = slot.own
        if previous == own and slot.provisional == provisional:
            return PutResult(slot.version, False)
        slot.version = self._next(slot.version)
        slot.own, slot.provisional = own, provisional
        touched = {own.external_customer_id}
        if previous is not None and previous.external_customer_id != own.external_customer_id:
            touched.add(previous.external_customer_id)
            self._customers[previous.external_customer_id].members.discard(own.external_id)
        self._customers.setdefault(own.external_customer_id, _Customer()).members.add(own.external_id)
        self._announce(own.external_id, slot.version, touched)
        return PutResult(slot.version, True)

    def _next(self, current: int) -> int:
        self._versions = max(self._versions, current) + 1
        return self._versions

    def _now_ms(self) -> int:
        return int(self._clock().timestamp() * 1000)

    def _announce(self, external_id: str, version: int, customers: set[str]) -> None:
        self._listeners.emit(Change(ChangeKind.SUBSCRIPTION, external_id, version))
        for customer_id in sorted(customers):
            customer = self._customers.setdefault(customer_id, _Customer())
            customer.version += 1
            self._listeners.emit(Change(ChangeKind.CUSTOMER, customer_id, customer.version))
