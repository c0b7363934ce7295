"""In-process store: the embedded default (one process, no Redis)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from entitlements_sidecar.domain.model import ResolvedSubscription
from entitlements_sidecar.domain.ports import (
    Change,
    ChangeKind,
    ChangeListener,
    Origin,
    StoredCustomer,
    StoredSubscription,
)
from entitlements_sidecar.store.listeners import Listeners


@dataclass(slots=True)
class _Slot:
    version: int = 0
    record: StoredSubscription | None = None  # None once deleted: the version survives as a tombstone


@dataclass(slots=True)
class _Customer:
    version: int = 0
    members: set[str] = field(default_factory=set)


class MemoryStore:
    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._subscriptions: dict[str, _Slot] = {}
        self._customers: dict[str, _Customer] = {}
        self._listeners = Listeners()
        self._clock = clock

    async def start(self) -> None:
        # In-process changes cannot be missed: the feed is up from the start.
        self._listeners.emit(Change(ChangeKind.FEED_RESET))

    async def close(self) -> None:
        return None

    async def get_subscription(self, external_id: str, min_version: int = 0) -> StoredSubscription | None:
        slot = self._subscriptions.get(external_id)
        return slot.record if slot else None

    async def get_subscriptions(self, external_ids: Sequence[str]) -> list[StoredSubscription | None]:
        return [await self.get_subscription(i) for i in external_ids]

    async def get_customer(self, customer_id: str, min_version: int = 0) -> StoredCustomer | None:
        customer = self._customers.get(customer_id)
        if customer is None or not customer.members:
            return None
        return StoredCustomer(customer_id, tuple(sorted(customer.members)), customer.version, Origin.MEMORY)

    async def put_subscription(self, subscription: ResolvedSubscription) -> int:
        slot = self._subscriptions.setdefault(subscription.external_id, _Slot())
        previous = slot.record.subscription if slot.record else None
        if previous == subscription:
            return slot.version
        slot.version += 1
        slot.record = StoredSubscription(subscription, slot.version, self._clock(), Origin.MEMORY)
        touched = {subscription.external_customer_id}
        if previous is not None and previous.external_customer_id != subscription.external_customer_id:
            touched.add(previous.external_customer_id)
            self._customers[previous.external_customer_id].members.discard(subscription.external_id)
        self._customers.setdefault(subscription.external_customer_id, _Customer()).members.add(subscription.external_id)
        self._announce(subscription.external_id, slot.version, touched)
        return slot.version

    async def put_subscriptions(self, subscriptions: Sequence[ResolvedSubscription]) -> list[tuple[int, bool]]:
        results = []
        for subscription in subscriptions:
            slot = self._subscriptions.get(subscription.external_id)
            before = slot.version if slot and slot.record else None
            version = await self.put_subscription(subscription)
            results.append((version, version != before))
        return results

    async def delete_subscription(self, external_id: str) -> int | None:
        slot = self._subscriptions.get(external_id)
        if slot is None or slot.record is None:
            return None
        customer_id = slot.record.subscription.external_customer_id
        slot.version += 1
        slot.record = None
        self._customers[customer_id].members.discard(external_id)
        self._announce(external_id, slot.version, {customer_id})
        return slot.version

    async def subscription_ids(self) -> set[str]:
        return {i for i, slot in self._subscriptions.items() if slot.record is not None}

    def add_listener(self, listener: ChangeListener) -> Callable[[], None]:
        return self._listeners.add(listener)

    def _announce(self, external_id: str, version: int, customers: set[str]) -> None:
        self._listeners.emit(Change(ChangeKind.SUBSCRIPTION, external_id, version))
        for customer_id in sorted(customers):
            customer = self._customers.setdefault(customer_id, _Customer())
            customer.version += 1
            self._listeners.emit(Change(ChangeKind.CUSTOMER, customer_id, customer.version))
