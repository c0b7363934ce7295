"""The catalog file as the source of truth (offline mode, the embedded default, app teams' CI).

The file is re-read when its modification time or size changes. An invalid edit is logged and
ignored: the last valid catalog keeps being served, so a typo never empties the store.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from entitlements_sidecar.domain.errors import CatalogError
from entitlements_sidecar.domain.model import (
    FeatureDefinition,
    ResolvedSubscription,
    Snapshot,
    SubscriptionDefinition,
)
from entitlements_sidecar.domain.ports import LATEST, EntitlementStore
from entitlements_sidecar.domain.usage import Meters
from entitlements_sidecar.sources.catalog_file import Catalog, load_catalog

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Stamp:
    mtime_ns: int
    size: int
    inode: int


class CatalogSource:
    def __init__(self, path: Path, store: EntitlementStore) -> None:
        self._path = path
        self._store = store  # read-throughs write what the file says here
        self._stamp: _Stamp | None = None
        self._catalog: Catalog | None = None
        self._resolved: dict[str, ResolvedSubscription] = {}
        self._features: Mapping[str, FeatureDefinition] = {}
        self._meters = Meters()
        self.last_error: CatalogError | None = None

    @property
    def path(self) -> Path:
        return self._path

    def load(self) -> None:
        """First load: an invalid or missing file is an error the caller must see."""
        stamp = self._stat()
        catalog = load_catalog(self._path)
        self._catalog, self._resolved = catalog, catalog.resolve()
        self._features, self._meters = catalog.features, catalog.meters
        self._stamp = stamp
        self.last_error = None

    def reload_if_changed(self) -> bool:
        """Re-read the file if it changed; True when a new valid catalog was loaded."""
        try:
            stamp = self._stat()
        except CatalogError as exc:
            self._remember(exc)
            return False
        if stamp == self._stamp:
            return False
        try:
            catalog = load_catalog(self._path)
            resolved = catalog.resolve()
        except CatalogError as exc:
            self._stamp = stamp  # do not re-parse the same broken file every poll
            self._remember(exc)
            return False
        self._stamp = stamp
        self._catalog, self._resolved = catalog, resolved
        self._features, self._meters = catalog.features, catalog.meters
        self.last_error = None
        log.info("catalog reloaded", extra={"path": str(self._path), "subscriptions": len(resolved)})
        return True

    async def load_all(self) -> Snapshot:
        catalog = self._catalog
        if catalog is None:
            return Snapshot({}, {}, [])
        return Snapshot(catalog.features, catalog.plans, list(catalog.subscriptions.values()))

    async def features(self) -> Mapping[str, FeatureDefinition]:
        return self._features

    def meters(self) -> Meters:
        """The catalog's usage meters, as of its last valid load."""
        return self._meters

    async def fetch_subscription(self, external_id: str) -> ResolvedSubscription | None:
        self.reload_if_changed()
        return self._resolved.get(external_id)

    async def fetch_customer(self, customer_id: str) -> list[ResolvedSubscription]:
        self.reload_if_changed()
        return [s for s in self._resolved.values() if s.external_customer_id == customer_id]

    async def refresh_subscription(self, external_id: str) -> None:
        self.reload_if_changed()
        await self._store_current(external_id)

    async def refresh_customer(self, customer_id: str) -> None:
        before = await self._store.get_customer(customer_id, LATEST)
        fresh = await self.fetch_customer(customer_id)
        for subscription in fresh:
            await self._store_current(subscription.external_id)
        for other in set(before.subscription_ids if before else ()) - {s.external_id for s in fresh}:
            await self._store_current(other)  # moved away, or gone

    async def _store_current(self, external_id: str) -> None:
        own = self._own(external_id)
        if own is None:
            await self._store.delete_subscription(external_id)
            return
        assert self._catalog is not None
        plan = self._catalog.plans.get(own.plan_code)
        if plan is not None and await self._store.plan(plan.code) != plan:
            await self._store.put_plan(plan)
        if await self._store.features() != dict(self._catalog.features):
            await self._store.put_features(self._catalog.features)
        await self._store.put_subscription(own)

    def _own(self, external_id: str) -> SubscriptionDefinition | None:
        return self._catalog.subscriptions.get(external_id) if self._catalog is not None else None

    def _stat(self) -> _Stamp:
        try:
            st = os.stat(self._path)
        except OSError as exc:
            raise CatalogError(str(self._path), "", f"cannot read file: {exc.strerror or exc}") from exc
        return _Stamp(st.st_mtime_ns, st.st_size, st.st_ino)

    def _remember(self, error: CatalogError) -> None:
        if str(error) != str(self.last_error):
            log.error("catalog not reloaded, keeping the last valid one: %s", error)
        self.last_error = error
