"""Keeps the store equal to the catalog file: first load, then polling for edits."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from entitlements_sidecar.domain.ports import EntitlementSource, EntitlementStore
from entitlements_sidecar.sync.snapshot import ApplyResult, apply_snapshot

log = logging.getLogger(__name__)


class ReloadableSource(EntitlementSource, Protocol):
    def load(self) -> None: ...

    def reload_if_changed(self) -> bool: ...


class CatalogSync:
    def __init__(self, source: ReloadableSource, store: EntitlementStore, interval: float = 1.0) -> None:
        self._source = source
        self._store = store
        self._interval = interval

    async def initial_load(self) -> ApplyResult:
        self._source.load()
        result = await apply_snapshot(self._store, await self._source.load_all())
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
                continue
            try:
                result = await apply_snapshot(self._store, await self._source.load_all())
            except Exception:
                log.exception("applying the catalog failed; retrying")
                continue
            pending = False
            log.info("catalog applied", extra={"written": result.written, "deleted": result.deleted})
