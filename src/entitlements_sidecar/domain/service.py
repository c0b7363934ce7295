"""The read service: consistency handling around the store and source, then the pure check rules.

It talks only to the ports; the L1 cache is a store wrapper, so an L1 hit here costs no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from entitlements_sidecar.domain.check import Decision, decide_for_customer, decide_for_subscription
from entitlements_sidecar.domain.map_status import MapStatus
from entitlements_sidecar.domain.merge import GrantedFeature, merge_features
from entitlements_sidecar.domain.ports import (
    LATEST,
    EntitlementSource,
    EntitlementStore,
    Origin,
    StoredCustomer,
    StoredSubscription,
)
from entitlements_sidecar.domain.queries import (
    CACHED,
    CheckQuery,
    Consistency,
    ConsistencyMode,
    Subject,
    SubjectKind,
)

_EPOCH = datetime.fromtimestamp(0, UTC)
_Record = TypeVar("_Record", StoredSubscription, StoredCustomer)


@dataclass(frozen=True, slots=True)
class Freshness:
    version: int
    synced_at: datetime
    origin: Origin
    stale: bool

    @classmethod
    def of(cls, record: StoredSubscription | StoredCustomer | None, synced_at: datetime | None) -> Freshness:
        if record is None:
            return cls(0, _EPOCH, Origin.MEMORY, False)
        return cls(record.version, synced_at or _EPOCH, record.origin, record.stale)


@dataclass(frozen=True, slots=True)
class CheckAnswer:
    decision: Decision
    freshness: Freshness


@dataclass(frozen=True, slots=True)
class EntitlementView:
    """Everything a subject is entitled to (GetEntitlements and Watch)."""

    subject: Subject
    found: bool
    subscriptions: tuple[StoredSubscription, ...]
    features: dict[str, GrantedFeature]
    freshness: Freshness


@dataclass(frozen=True, slots=True)
class _CustomerRead:
    customer: StoredCustomer | None
    subscriptions: list[StoredSubscription]
    partial: bool = False  # read from a map that is not known to be complete


class EntitlementReader(Protocol):
    """What the gRPC servicer reads through: ReadService, or ReadService behind the failure policy."""

    async def check(self, query: CheckQuery) -> CheckAnswer: ...

    async def get(self, subject: Subject, consistency: Consistency = CACHED) -> EntitlementView: ...


class ReadService:
    def __init__(
        self,
        store: EntitlementStore,
        source: EntitlementSource,
        map_status: MapStatus,
    ) -> None:
        self._store = store
        self._source = source
        self._map = map_status  # "not found" is an answer only while it says the map is complete

    async def check(self, query: CheckQuery) -> CheckAnswer:
        subject = query.subject
        if subject.kind is SubjectKind.SUBSCRIPTION:
            record = await self._read_subscription(subject.id, query.consistency)
            decision = decide_for_subscription(record.subscription if record else None, query)
            return CheckAnswer(decision, Freshness.of(record, record.synced_at if record else None))
        read = await self._read_customer(subject.id, query.consistency)
        decision = decide_for_customer([r.subscription for r in read.subscriptions], query)
        return CheckAnswer(decision, self._customer_freshness(read))

    async def get(self, subject: Subject, consistency: Consistency = CACHED) -> EntitlementView:
        if subject.kind is SubjectKind.SUBSCRIPTION:
            record = await self._read_subscription(subject.id, consistency)
            if record is None:
                return EntitlementView(subject, False, (), {}, Freshness.of(None, None))
            features = merge_features([record.subscription])
            return EntitlementView(subject, True, (record,), features, Freshness.of(record, record.synced_at))
        read = await self._read_customer(subject.id, consistency)
        features = merge_features([r.subscription for r in read.subscriptions])
        return EntitlementView(
            subject,
            bool(read.subscriptions),
            tuple(read.subscriptions),
            features,
            self._customer_freshness(read),
        )

    # -- reads with consistency --------------------------------------------------------------

    async def _read_subscription(self, external_id: str, consistency: Consistency) -> StoredSubscription | None:
        if consistency.mode is ConsistencyMode.FULL:
            return await self._refresh_subscription(external_id)
        record = await self._store.get_subscription(external_id, consistency.min_version)
        if record is None and consistency.mode is ConsistencyMode.CACHED:
            self._map.require_complete()  # else "not found" would be a guess
        if consistency.mode is ConsistencyMode.MIN_VERSION and (
            record is None or record.version < consistency.min_version
        ):
            record = await self._refresh_subscription(external_id)
            if record is not None and record.version < consistency.min_version:
                # The source has nothing newer: answer, but say it is not as fresh as asked.
                record = _mark_stale(record)
        return record

    async def _refresh_subscription(self, external_id: str) -> StoredSubscription | None:
        await self._source.refresh_subscription(external_id)  # the source writes what it read
        record = await self._store.get_subscription(external_id, LATEST)
        return replace(record, origin=Origin.SOURCE) if record is not None else None

    async def _read_customer(self, customer_id: str, consistency: Consistency) -> _CustomerRead:
        if consistency.mode is ConsistencyMode.FULL:
            return await self._refresh_customer(customer_id)
        customer = await self._store.get_customer(customer_id, consistency.min_version)
        if consistency.mode is ConsistencyMode.MIN_VERSION and (
            customer is None or customer.version < consistency.min_version
        ):
            read = await self._refresh_customer(customer_id)
            if read.customer is not None and read.customer.version < consistency.min_version:
                return _CustomerRead(_mark_stale(read.customer), read.subscriptions)
            return read
        read = await self._with_subscriptions(customer)
        if not self._map.complete:
            if not read.subscriptions:
                self._map.require_complete()
            return replace(read, partial=True)
        return read

    async def _refresh_customer(self, customer_id: str) -> _CustomerRead:
        await self._source.refresh_customer(customer_id)
        read = await self._with_subscriptions(await self._store.get_customer(customer_id, LATEST))
        return _CustomerRead(
            replace(read.customer, origin=Origin.SOURCE) if read.customer else None,
            [replace(r, origin=Origin.SOURCE) for r in read.subscriptions],
        )

    async def _with_subscriptions(self, customer: StoredCustomer | None) -> _CustomerRead:
        if customer is None:
            return _CustomerRead(None, [])
        records = await self._store.get_subscriptions(customer.subscription_ids)
        # An index may briefly list a subscription that moved away (the store's writes are per key).
        mine = [r for r in records if r is not None and r.subscription.external_customer_id == customer.customer_id]
        return _CustomerRead(customer, mine)

    def _customer_freshness(self, read: _CustomerRead) -> Freshness:
        synced = max((r.synced_at for r in read.subscriptions), default=None)
        stale = read.partial or any(r.stale for r in read.subscriptions)
        freshness = Freshness.of(read.customer, synced)
        if stale and not freshness.stale:
            return Freshness(freshness.version, freshness.synced_at, freshness.origin, True)
        return freshness


def _mark_stale(record: _Record) -> _Record:
    return replace(record, stale=True)
