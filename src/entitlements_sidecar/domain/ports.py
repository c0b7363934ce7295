"""The seams between the domain and the adapters. Implementations live in store/ and sources/."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol, TypeVar

from entitlements_sidecar.domain.model import (
    FeatureDefinition,
    PlanDefinition,
    ResolvedSubscription,
    SubscriptionDefinition,
)

# Passed as `min_version`, asks for data newer than any cache can hold: caches read through.
LATEST = 2**63 - 1
T = TypeVar("T")


class Origin(enum.Enum):
    """Where a record was read from (reported to clients as `Freshness.source`)."""

    MEMORY = "memory"
    REDIS = "redis"
    SOURCE = "source"
    FALLBACK = "fallback"


@dataclass(frozen=True, slots=True)
class StoredSubscription:
    subscription: ResolvedSubscription
    version: int
    synced_at: datetime
    origin: Origin
    stale: bool = False


@dataclass(frozen=True, slots=True)
class StoredCustomer:
    customer_id: str
    subscription_ids: tuple[str, ...]
    version: int
    origin: Origin
    stale: bool = False


class ChangeKind(enum.Enum):
    SUBSCRIPTION = "subscription"  # one subscription was written or deleted
    CUSTOMER = "customer"  # a customer's subscriptions (or their set) changed
    PLAN = "plan"  # a plan's entitlements changed: every subscription on it may answer differently
    FEATURES = "features"  # the feature catalog changed: every subscription may answer differently
    FEED_LOST = "feed_lost"  # the change feed broke: cached data may be out of date
    FEED_RESET = "feed_reset"  # the feed is (re)connected: anything may have changed meanwhile


@dataclass(frozen=True, slots=True)
class Change:
    kind: ChangeKind
    id: str = ""
    version: int = 0


ChangeListener = Callable[[Change], None]


@dataclass(frozen=True, slots=True)
class StoredOwnPart:
    """A subscription's own part with when the source said it; `provisional` while only a listing said it
    (its plan-level answer, flagged stale, until its own read)."""

    definition: SubscriptionDefinition
    observed_ms: int
    provisional: bool = False


class PutResult(NamedTuple):
    version: int  # the subscription's own version after the write (its answers' version is composed, below)
    changed: bool
    superseded: bool = False  # not written: what is stored was observed later than this read


class EntitlementStore(Protocol):
    """The resolved-entitlement map, factorized (docs/adr/0012): the feature catalog once, each plan once,
    and per subscription only its own part (`SubscriptionDefinition`). Reads answer the composition,
    `resolve_subscription(own part, plan, features)`, whose version is the largest of the three parts'
    versions, so every change that can alter an answer raises it. Versions only ever grow."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def get_subscription(self, external_id: str, min_version: int = 0) -> StoredSubscription | None:
        """`min_version` lets a cache know it must look further; authoritative stores ignore it."""
        ...

    async def get_subscriptions(self, external_ids: Sequence[str]) -> list[StoredSubscription | None]: ...

    async def get_customer(self, customer_id: str, min_version: int = 0) -> StoredCustomer | None: ...

    async def put_subscription(self, definition: SubscriptionDefinition, observed_ms: int = 0) -> int:
        """Store atomically; return the new version, or the current one if nothing changed."""
        ...

    async def put_subscriptions(
        self, definitions: Sequence[SubscriptionDefinition], observed_ms: int = 0, provisional: bool = False
    ) -> list[PutResult]:
        """Store many (each atomically, in one round trip where the store allows). `observed_ms` orders
        reads of the source: a write observed before what is stored is refused (0: now). A `provisional`
        write (from a listing, without the subscription's own rows) is made only where nothing is stored,
        and its answers are flagged stale until a full write replaces it."""
        ...

    async def delete_subscription(self, external_id: str, observed_ms: int = 0) -> int | None:
        """Remove; return the tombstone's version, or None if it was not stored (or was observed later)."""
        ...

    async def definition(self, external_id: str) -> SubscriptionDefinition | None:
        """The subscription's own part as stored (its removals outlive plan edits)."""
        ...

    async def own_parts(self, external_ids: Sequence[str]) -> list[StoredOwnPart | None]: ...

    async def id_page(self, cursor: int, count: int) -> tuple[int, list[str]]:
        """About `count` live ids from `cursor` (0 to begin) and the next cursor (0 at the end). Every id live
        for the whole walk is listed at least once, also when the walk resumes from a saved cursor."""
        ...

    async def put_plan(self, plan: PlanDefinition) -> int:
        """One write, whatever the number of subscriptions on the plan; returns the plan's version."""
        ...

    async def plan(self, code: str) -> PlanDefinition | None: ...

    async def put_features(self, features: Mapping[str, FeatureDefinition]) -> int:
        """Replace the feature catalog (one write); returns its version."""
        ...

    async def features(self) -> dict[str, FeatureDefinition]: ...

    async def subscription_ids(self) -> set[str]: ...

    def add_listener(self, listener: ChangeListener) -> Callable[[], None]:
        """Call `listener` on every change (from any process sharing the store); returns an unsubscribe."""
        ...


class EntitlementSource(Protocol):
    """The source of truth, for reads that must be fresh. A source is the one writer of what it reads:
    once a refresh returns, the store holds what the source said (or something newer), and the reader
    reads it back from the store."""

    async def refresh_subscription(self, external_id: str) -> None:
        """Store what the source says of one subscription now (deleted if it has none)."""
        ...

    async def refresh_customer(self, customer_id: str) -> None:
        """Store every subscription the source lists for the customer, and the current state of those the
        store lists under it that the source does not (moved to another customer, or gone)."""
        ...


class FeatureCatalog(Protocol):
    """The features the source of truth defines, so a bulk flag answer holds every flag a single
    evaluation would answer, not only the subject's own."""

    async def features(self) -> Mapping[str, FeatureDefinition]: ...


@dataclass(frozen=True, slots=True)
class SyncCheckpoint:
    """Where a full sync is, so a syncer that was killed resumes there. `phase` is "list" (the listing's
    pages, `position` the next page) or "detail" (each subscription's own read, `position` the id walk's
    cursor); a run reads again what was not confirmed since `started_ms`."""

    epoch: str
    started_ms: int
    phase: str
    position: int


class CheckpointStore(Protocol):
    """Kept with the map (lost with it, like the map's marker)."""

    async def read(self) -> SyncCheckpoint | None: ...

    async def write(self, checkpoint: SyncCheckpoint) -> None: ...

    async def clear(self) -> None: ...


@dataclass(frozen=True, slots=True)
class MapState:
    """The map's marker as read in one round trip (ms since the epoch, None when not recorded)."""

    loaded_at: int | None
    confirmed_at: int | None


class MapMeta(Protocol):
    """The map as a whole: whether a complete load is in the store, and when the source last confirmed it.

    It lives with the map, so a store that loses everything (a Redis restarted without persistence, a
    flush) loses it too: that is how the loss is noticed. A load runs under an epoch: `begin_load` keeps
    the map's epoch or starts one when there is none, and `finish_load` records the load only if the epoch
    is still there, so a load that the store lost part of on the way is never taken for complete.
    """

    async def begin_load(self) -> str: ...

    async def finish_load(self, epoch: str, at_ms: int) -> bool:
        """Record a complete load at `at_ms` (also a confirmation); False if the epoch is gone or another."""
        ...

    async def read(self) -> MapState:
        """Both times in one read: what readiness asks every second."""
        ...

    async def loaded_at(self) -> int | None:
        """When a complete load was last recorded (ms since the epoch), or None: never, or lost since."""
        ...

    async def mark_confirmed(self, at_ms: int) -> None:
        """The syncer's heartbeat: at `at_ms` the map held everything the source had told us. Ignored while
        no complete load is recorded (a heartbeat must not make a lost map look current)."""
        ...

    async def confirmed_at(self) -> int | None:
        """The last heartbeat (ms since the epoch): readiness measures sync lag from it."""
        ...


class Deadline(Protocol):
    """Bounds the I/O inside one request by the caller's deadline, so an answer can still be given in time."""

    async def within(self, work: Awaitable[T]) -> T:
        """Await `work`; raise DeadlineError (and cancel it) when it would end after the caller's deadline
        less a margin. Without a deadline on the current call, just await it."""
        ...


class SyncProbe(Protocol):
    def confirmed_at(self) -> float | None:
        """When the source last confirmed the whole map (epoch seconds): the sync lag counts from it."""
        ...

    def snapshot_at(self) -> float | None:
        """When the map was last loaded or reconciled in full."""
        ...

    def problem(self) -> str | None:
        """A problem that does not stop serving yet (a rejected catalog edit, a refused API key)."""
        ...

    def reconciliation(self) -> dict[str, Any] | None:
        """The rolling reconciliation's state (cycles, last cycle's seconds, running), where this process runs it."""
        ...
