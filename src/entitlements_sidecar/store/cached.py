"""The in-process L1 cache: an LRU in front of any store, bounded in bytes and in entries.

A hit costs no I/O. Entries are dropped when the wrapped store's change feed reports a change
(from any process sharing the store); while the feed is down, hits are answered but marked
stale and nothing new is cached; when it comes back, everything cached is dropped, because
changes may have been missed in between.

Answers on a plan share that plan's resolved features (domain/composition.py), so an entry holds
little more than its subscription's own fields. A plan or catalog change does not walk the entries:
each keeps the generation it was filled in, and a hit on an entry older than its plan's last change
(or the catalog's) is a miss.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

from entitlements_sidecar.domain.composition import PlanFeatures
from entitlements_sidecar.domain.model import FeatureDefinition, PlanDefinition, SubscriptionDefinition
from entitlements_sidecar.domain.ports import (
    Change,
    ChangeKind,
    ChangeListener,
    EntitlementStore,
    Origin,
    PutResult,
    StoredCustomer,
    StoredOwnPart,
    StoredSubscription,
)

_ABSENT: Final = object()  # a cached "not found", so unknown subjects do not cost a round trip each
# Estimated bytes of one entry beyond its id and customer strings: the dict slot and LRU links, the two
# records, two datetimes and the version. `make bench-scale` S2 measured 562 B of RSS per cached
# subscription at N=1,000,000 and 640 B at 100,000 (ids of 11 characters, customers of 12): 600 + 23
# estimates about the larger. Own features add per privilege.
ENTRY_BYTES: Final = 600
_PRIVILEGE_BYTES: Final = 260
_CUSTOMER_MEMBER_BYTES: Final = 64


@dataclass(frozen=True, slots=True)
class _Held(StoredSubscription):
    """A cached subscription, with the parts generation it was filled in."""

    generation: int = 0


_Entry = _Held | StoredCustomer | object


class CachedStore:
    def __init__(self, inner: EntitlementStore, max_entries: int = 10_000, max_bytes: int = 1 << 62) -> None:
        self._inner = inner
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._subs: OrderedDict[str, _Entry] = OrderedDict()
        self._customers: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        # subscription -> the cached customer listing it, so a local write that moves or deletes a
        # subscription drops its old customer now rather than when the change feed says so.
        self._listed_by: dict[str, str] = {}
        self._generation = 0  # bumped by every invalidation; a fill that raced one is not kept
        self._parts = 0  # generation of the last plan or catalog change
        self._plan_changed: dict[str, int] = {}  # plan code -> generation of its last change
        self._features_changed = 0
        self._feed_up = False
        self.hits = 0
        self.misses = 0
        inner.add_listener(self._on_change)

    async def start(self) -> None:
        await self._inner.start()

    async def close(self) -> None:
        await self._inner.close()

    def __len__(self) -> int:
        return len(self._subs) + len(self._customers)

    @property
    def bytes(self) -> int:
        """The estimated bytes the entries hold (the bound's measure)."""
        return self._bytes

    # -- reads ----------------------------------------------------------------------------

    async def get_subscription(self, external_id: str, min_version: int = 0) -> StoredSubscription | None:
        entry = self._subscription_entry(external_id)
        if entry is not None and (entry is _ABSENT or _version(entry) >= min_version):
            return self._serve(entry)  # type: ignore[return-value]
        self.misses += 1
        generation = self._generation
        record = await self._inner.get_subscription(external_id, min_version)
        self._fill_subscription(external_id, record, generation)
        return record

    async def get_subscriptions(self, external_ids: Sequence[str]) -> list[StoredSubscription | None]:
        results: list[StoredSubscription | None] = []
        missing: list[int] = []
        for index, external_id in enumerate(external_ids):
            entry = self._subscription_entry(external_id)
            if entry is None:
                missing.append(index)
                results.append(None)
            else:
                results.append(self._serve(entry))  # type: ignore[arg-type]
        if missing:
            self.misses += len(missing)
            generation = self._generation
            fetched = await self._inner.get_subscriptions([external_ids[i] for i in missing])
            for index, record in zip(missing, fetched, strict=True):
                results[index] = record
                self._fill_subscription(external_ids[index], record, generation)
        return results

    async def get_customer(self, customer_id: str, min_version: int = 0) -> StoredCustomer | None:
        entry = self._customers.get(customer_id)
        if entry is not None and (entry is _ABSENT or _version(entry) >= min_version):
            self._customers.move_to_end(customer_id)
            self.hits += 1
            return self._serve(entry)  # type: ignore[return-value]
        self.misses += 1
        generation = self._generation
        record = await self._inner.get_customer(customer_id, min_version)
        self._fill_customer(customer_id, record, generation)
        return record

    async def subscription_ids(self) -> set[str]:
        return await self._inner.subscription_ids()

    async def definition(self, external_id: str) -> SubscriptionDefinition | None:
        return await self._inner.definition(external_id)

    async def own_parts(self, external_ids: Sequence[str]) -> list[StoredOwnPart | None]:
        return await self._inner.own_parts(external_ids)

    async def id_page(self, cursor: int, count: int) -> tuple[int, list[str]]:
        return await self._inner.id_page(cursor, count)

    async def plan(self, code: str) -> PlanDefinition | None:
        return await self._inner.plan(code)

    async def features(self) -> dict[str, FeatureDefinition]:
        return await self._inner.features()

    # -- writes go through, and drop what they make stale right away ----------------------

    async def put_subscription(self, definition: SubscriptionDefinition, observed_ms: int = 0) -> int:
        [result] = await self.put_subscriptions([definition], observed_ms)
        return result.version

    async def put_subscriptions(
        self, definitions: Sequence[SubscriptionDefinition], observed_ms: int = 0, provisional: bool = False
    ) -> list[PutResult]:
        results = await self._inner.put_subscriptions(definitions, observed_ms, provisional)
        for definition in definitions:
            self._drop_written(definition.external_id)
            self._drop_customer(definition.external_customer_id)
        return results

    async def delete_subscription(self, external_id: str, observed_ms: int = 0) -> int | None:
        cached = self._subs.get(external_id)
        version = await self._inner.delete_subscription(external_id, observed_ms)
        self._drop_written(external_id)
        if isinstance(cached, StoredSubscription):
            self._drop_customer(cached.subscription.external_customer_id)
        return version

    async def put_plan(self, plan: PlanDefinition) -> int:
        version = await self._inner.put_plan(plan)
        self._on_change(Change(ChangeKind.PLAN, plan.code, version))
        return version

    async def put_features(self, features: Mapping[str, FeatureDefinition]) -> int:
        version = await self._inner.put_features(features)
        self._on_change(Change(ChangeKind.FEATURES, "", version))
        return version

    def add_listener(self, listener: ChangeListener) -> Callable[[], None]:
        return self._inner.add_listener(listener)

    # -- internals ------------------------------------------------------------------------

    def _subscription_entry(self, external_id: str) -> _Entry | None:
        entry = self._subs.get(external_id)
        if entry is None:
            return None
        if entry is not _ABSENT:
            held: _Held = entry  # type: ignore[assignment]
            if held.generation < self._parts and (
                held.generation < self._features_changed
                or held.generation < self._plan_changed.get(held.subscription.plan_code, 0)
            ):
                self._remove_subscription(external_id)
                return None
        self._subs.move_to_end(external_id)
        self.hits += 1
        return entry

    def _serve(self, entry: _Entry) -> StoredSubscription | StoredCustomer | None:
        if entry is _ABSENT:
            return None
        assert isinstance(entry, StoredSubscription | StoredCustomer)
        return entry if self._feed_up else replace(entry, stale=True)

    def _keeps(self, generation: int) -> bool:
        return self._feed_up and generation == self._generation and self._max_entries > 0

    def _fill_subscription(self, external_id: str, record: StoredSubscription | None, generation: int) -> None:
        if not self._keeps(generation):
            return
        self._remove_subscription(external_id)
        if record is None:
            entry: _Entry = _ABSENT
        else:
            entry = _Held(
                record.subscription, record.version, record.synced_at, Origin.MEMORY, record.stale, self._parts
            )
        self._subs[external_id] = entry
        self._bytes += _cost(external_id, entry)
        self._evict()

    def _fill_customer(self, customer_id: str, record: StoredCustomer | None, generation: int) -> None:
        if not self._keeps(generation):
            return
        self._drop_customer(customer_id, bump=False)
        entry: _Entry = _ABSENT if record is None else replace(record, origin=Origin.MEMORY)
        self._customers[customer_id] = entry
        self._bytes += _cost(customer_id, entry)
        if isinstance(record, StoredCustomer):
            self._listed_by.update(dict.fromkeys(record.subscription_ids, record.customer_id))
        self._evict()

    def _evict(self) -> None:
        # Customers are few and cheap; subscriptions go first, the oldest first.
        while self._subs and (len(self) > self._max_entries or self._bytes > self._max_bytes):
            self._remove_subscription(next(iter(self._subs)))
        while self._customers and (len(self) > self._max_entries or self._bytes > self._max_bytes):
            self._drop_customer(next(iter(self._customers)), bump=False)

    def _remove_subscription(self, external_id: str) -> None:
        entry = self._subs.pop(external_id, None)
        if entry is not None:
            self._bytes -= _cost(external_id, entry)

    def _drop_subscription(self, external_id: str) -> None:
        self._generation += 1
        self._remove_subscription(external_id)

    def _drop_customer(self, customer_id: str, bump: bool = True) -> None:
        if bump:
            self._generation += 1
        entry = self._customers.pop(customer_id, None)
        if entry is None:
            return
        self._bytes -= _cost(customer_id, entry)
        if isinstance(entry, StoredCustomer):
            for member in entry.subscription_ids:
                if self._listed_by.get(member) == customer_id:
                    del self._listed_by[member]

    def _drop_written(self, external_id: str) -> None:
        self._drop_subscription(external_id)
        listed_by = self._listed_by.get(external_id)
        if listed_by is not None:
            self._drop_customer(listed_by)

    def _on_change(self, change: Change) -> None:
        if change.kind is ChangeKind.SUBSCRIPTION:
            self._drop_subscription(change.id)
        elif change.kind is ChangeKind.CUSTOMER:
            self._drop_customer(change.id)
        elif change.kind is ChangeKind.PLAN:
            self._generation += 1
            self._parts = self._generation
            self._plan_changed[change.id] = self._generation
        elif change.kind is ChangeKind.FEATURES:
            self._generation += 1
            self._parts = self._features_changed = self._generation
            self._plan_changed.clear()  # older than the catalog change: that check covers them
        elif change.kind is ChangeKind.FEED_LOST:
            self._generation += 1
            self._feed_up = False
        elif change.kind is ChangeKind.FEED_RESET:
            self._generation += 1
            self._subs.clear()
            self._customers.clear()
            self._listed_by.clear()
            self._plan_changed.clear()
            self._bytes = 0
            self._feed_up = True


def _cost(key: str, entry: _Entry) -> int:
    if isinstance(entry, StoredSubscription):
        subscription = entry.subscription
        size = ENTRY_BYTES + len(key) + len(subscription.external_customer_id)
        if not isinstance(subscription.features, PlanFeatures):  # its own mapping: count what it holds
            size += _PRIVILEGE_BYTES * sum(1 + len(f.privileges) for f in subscription.features.values())
        return size
    if isinstance(entry, StoredCustomer):
        return ENTRY_BYTES + len(key) + _CUSTOMER_MEMBER_BYTES * len(entry.subscription_ids)
    return 100 + len(key)  # a cached "not found"


def _version(entry: _Entry) -> int:
    assert isinstance(entry, StoredSubscription | StoredCustomer)
    return entry.version
