"""Keeps the store equal to the catalog file: first load, then polling for edits."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from entitlements_sidecar.domain.ports import EntitlementSource, EntitlementStore
from entitlements_sidecar.sync.snapshot import ApplyResult, apply_snapshot

log = logging.getLogger(__name__)


class ReloadableSource(EntitlementSource, Protocol):
    def load(self) -> None: ...

    def reload_if_changed(self) -> bool: ...

    @property
    def last_error(self) -> Exception | None: ...


class CatalogSync:
    def __init__(self, source: ReloadableSource, store: EntitlementStore, interval: float = 1.0) -> None:
        self._source = source
        self._store = store
        self._interval = interval
        # When the store last held what the file says (time.time()); readiness measures sync lag from it.
        self.confirmed_at: float | None = None
        self.applied_at: float | None = None

    async def initial_load(self) -> ApplyResult:
        self._source.load()
        result = await apply_snapshot(self._store, await self._source.load_all())
        self.confirmed_at = self.applied_at = time.time()
        log.info("catalog loaded", extra={"written": result.written, "deleted": result.deleted})
        return result

    async def run(self) -> None:
        """Poll the file until cancelled. Polling (not inotify) also works for ConfigMap mounts,
        whose files change by symlink swap."""
        pending = False  # a loaded catalog not yet written to the store (e.g. Redis was down)
        while True:
            await asyncio.sleep(self._interval)
            pending = self._source.reload_if_changed() or pending
            if not pending:
                if self._source.last_error is None:
                    self.confirmed_at = time.time()  # unchanged and valid: still current
                continue
            try:
                result = await apply_snapshot(self._store, await self._source.load_all())
            except Exception:
                log.exception("applying the catalog failed; retrying")
                continue
            pending = False
            self.applied_at = time.time()
            if self._source.last_error is None:
                self.confirmed_at = self.applied_at
            log.info("catalog applied", extra={"written": result.written, "deleted": result.deleted})
