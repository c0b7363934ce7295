"""The seams between the domain and the adapters. Implementations live in store/ and sources/."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from entitlements_sidecar.domain.model import ResolvedSubscription

# Passed as `min_version`, asks for data newer than any cache can hold: caches read through.
LATEST = 2**63 - 1


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
    FEED_LOST = "feed_lost"  # the change feed broke: cached data may be out of date
    FEED_RESET = "feed_reset"  # the feed is (re)connected: anything may have changed meanwhile


@dataclass(frozen=True, slots=True)
class Change:
    kind: ChangeKind
    id: str = ""
    version: int = 0


ChangeListener = Callable[[Change], None]


class EntitlementStore(Protocol):
    """The resolved-entitlement map. Versions are per subject and only ever grow."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def get_subscription(self, external_id: str, min_version: int = 0) -> StoredSubscription | None:
        """`min_version` lets a cache know it must look further; authoritative stores ignore it."""
        ...

    async def get_subscriptions(self, external_ids: Sequence[str]) -> list[StoredSubscription | None]: ...

    async def get_customer(self, customer_id: str, min_version: int = 0) -> StoredCustomer | None: ...

    async def put_subscription(self, subscription: ResolvedSubscription) -> int:
        """Store atomically; return the new version, or the current one if nothing changed."""
        ...

    async def delete_subscription(self, external_id: str) -> int | None:
        """Remove; return the tombstone's version, or None if it was not stored."""
        ...

    async def subscription_ids(self) -> set[str]: ...

    def add_listener(self, listener: ChangeListener) -> Callable[[], None]:
        """Call `listener` on every change (from any process sharing the store); returns an unsubscribe."""
        ...


class EntitlementSource(Protocol):
    """The source of truth (the catalog file now, Lago later), already resolved."""

    async def load_all(self) -> list[ResolvedSubscription]: ...

    async def fetch_subscription(self, external_id: str) -> ResolvedSubscription | None: ...

    async def fetch_customer(self, customer_id: str) -> list[ResolvedSubscription]: ...
