"""The in-process L1 cache: a bounded LRU in front of any store.

A hit costs no I/O. Entries are dropped when the wrapped store's change feed reports a change
(from any process sharing the store); while the feed is down, hits are answered but marked
stale and nothing new is cached; when it comes back, everything cached is dropped, because
changes may have been missed in between.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Final, TypeVar, cast

from entitlements_sidecar.domain.model import ResolvedSubscription
from entitlements_sidecar.domain.ports import (
    Change,
    ChangeKind,
    ChangeListener,
    EntitlementStore,
    Origin,
    StoredCustomer,
    StoredSubscription,
)

_ABSENT: Final = object()  # a cached "not found", so unknown subjects do not cost a round trip each
_Key = tuple[str, str]
_Record = StoredSubscription | StoredCustomer
_Entry = _Record | object
_R = TypeVar("_R", StoredSubscription, StoredCustomer)


class CachedStore:
    def __init__(self, inner: EntitlementStore, max_entries: int = 10_000) -> None:
        self._inner = inner
        self._max_entries = max_entries
        self._entries: OrderedDict[_Key, _Entry] = OrderedDict()
        # subscription -> the cached customer listing it, so a local write that moves or deletes a
        # subscription drops its old customer now rather than when the change feed says so.
        self._listed_by: dict[str, str] = {}
        self._generation = 0  # bumped by every invalidation; a fill that raced one is not kept
        self._feed_up = False
        self.hits = 0
        self.misses = 0
        inner.add_listener(self._on_change)

    async def start(self) -> None:
        await self._inner.start()

    async def close(self) -> None:
        await self._inner.close()

    def __len__(self) -> int:
        return len(self._entries)

    # -- reads ----------------------------------------------------------------------------

    async def get_subscription(self, external_id: str, min_version: int = 0) -> StoredSubscription | None:
        return await self._get(("s", external_id), min_version, self._inner.get_subscription)

    async def get_subscriptions(self, external_ids: Sequence[str]) -> list[StoredSubscription | None]:
        results: list[StoredSubscription | None] = []
        missing: list[int] = []
        for index, external_id in enumerate(external_ids):
            entry = self._lookup(("s", external_id))
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
                self._fill(("s", external_ids[index]), record, generation)
        return results

    async def get_customer(self, customer_id: str, min_version: int = 0) -> StoredCustomer | None:
        return await self._get(("c", customer_id), min_version, self._inner.get_customer)

    async def subscription_ids(self) -> set[str]:
        return await self._inner.subscription_ids()

    # -- writes go through, and drop what they make stale right away ----------------------

    async def put_subscription(self, subscription: ResolvedSubscription) -> int:
        [(version, _)] = await self.put_subscriptions([subscription])
        return version

    async def put_subscriptions(self, subscriptions: Sequence[ResolvedSubscription]) -> list[tuple[int, bool]]:
        results = await self._inner.put_subscriptions(subscriptions)
        for subscription in subscriptions:
            self._drop_written(subscription.external_id)
            self._drop(("c", subscription.external_customer_id))
        return results

    async def delete_subscription(self, external_id: str) -> int | None:
        cached = self._entries.get(("s", external_id))
        version = await self._inner.delete_subscription(external_id)
        self._drop_written(external_id)
        if isinstance(cached, StoredSubscription):
            self._drop(("c", cached.subscription.external_customer_id))
        return version

    def add_listener(self, listener: ChangeListener) -> Callable[[], None]:
        return self._inner.add_listener(listener)

    # -- internals ------------------------------------------------------------------------

    async def _get(self, key: _Key, min_version: int, load: Callable[[str, int], Awaitable[_R | None]]) -> _R | None:
        entry = self._lookup(key)
        if entry is not None and (entry is _ABSENT or _version(entry) >= min_version):
            return cast("_R | None", self._serve(entry))
        self.misses += 1
        generation = self._generation
        record = await load(key[1], min_version)
        self._fill(key, record, generation)
        return record

    def _lookup(self, key: _Key) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self.hits += 1
        return entry

    def _serve(self, entry: _Entry) -> StoredSubscription | StoredCustomer | None:
        if entry is _ABSENT:
            return None
        assert isinstance(entry, StoredSubscription | StoredCustomer)
        return entry if self._feed_up else replace(entry, stale=True)

    def _fill(self, key: _Key, record: StoredSubscription | StoredCustomer | None, generation: int) -> None:
        if not self._feed_up or generation != self._generation or self._max_entries <= 0:
            return
        previous = self._entries.get(key)
        if previous is not None:
            self._unlist(key, previous)
        self._entries[key] = _ABSENT if record is None else replace(record, origin=Origin.MEMORY)
        self._entries.move_to_end(key)
        if isinstance(record, StoredCustomer):
            self._listed_by.update(dict.fromkeys(record.subscription_ids, record.customer_id))
        while len(self._entries) > self._max_entries:
            self._unlist(*self._entries.popitem(last=False))

    def _drop(self, key: _Key) -> None:
        self._generation += 1
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._unlist(key, entry)

    def _drop_written(self, external_id: str) -> None:
        self._drop(("s", external_id))
        listed_by = self._listed_by.get(external_id)
        if listed_by is not None:
            self._drop(("c", listed_by))

    def _unlist(self, key: _Key, entry: _Entry) -> None:
        if isinstance(entry, StoredCustomer):
            for member in entry.subscription_ids:
                if self._listed_by.get(member) == key[1]:
                    del self._listed_by[member]

    def _on_change(self, change: Change) -> None:
        if change.kind is ChangeKind.SUBSCRIPTION:
            self._drop(("s", change.id))
        elif change.kind is ChangeKind.CUSTOMER:
            self._drop(("c", change.id))
        elif change.kind is ChangeKind.FEED_LOST:
            self._generation += 1
            self._feed_up = False
        elif change.kind is ChangeKind.FEED_RESET:
            self._generation += 1
            self._entries.clear()
            self._listed_by.clear()
            self._feed_up = True


def _version(entry: _Entry) -> int:
    assert isinstance(entry, StoredSubscription | StoredCustomer)
    return entry.version
