"""Keeps the store equal to the catalog file: first load, then polling for edits, and writing it all
again when the store lost the map (a Redis that restarted empty)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from entitlements_sidecar.domain.model import Snapshot
from entitlements_sidecar.domain.ports import EntitlementSource, EntitlementStore, MapMeta
from entitlements_sidecar.sync.map_watch import MapWatch
from entitlements_sidecar.sync.snapshot import ApplyResult, apply_snapshot

log = logging.getLogger(__name__)


class ReloadableSource(EntitlementSource, Protocol):
    async def load_all(self) -> Snapshot: ...

    def load(self) -> None: ...

    def reload_if_changed(self) -> bool: ...

    @property
    def last_error(self) -> Exception | None: ...


class CatalogSync:
    def __init__(
        self,
        source: ReloadableSource,
        store: EntitlementStore,
        meta: MapMeta,
        interval: float = 1.0,
        watch: MapWatch | None = None,
    ) -> None:
        self._source = source
        self._store = store
        self._meta = meta
        self._interval = interval
        self._watch = watch  # says when the store lost a complete load
        # When the store last held what the file says (time.time()); readiness measures sync lag from it.
        self.confirmed_at: float | None = None
        self.applied_at: float | None = None

    def problem(self) -> str | None:
        """Why the file's current content is not what is served, if it is not."""
        error = self._source.last_error
        if error is None:
            return None
        served = "the catalog applied at " + _when(self.applied_at) if self.applied_at else "the last good catalog"
        return f"the catalog file was not loaded, serving {served}: {error}"

    async def initial_load(self) -> ApplyResult:
        self._source.load()
        result = await self._apply()
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
            if not pending and self._watch is not None and self._watch.lost:
                log.warning("the map is gone from the store (Redis restarted empty?): writing the catalog again")
                pending = True
            if not pending:
                if self._source.last_error is None:
                    self.confirmed_at = time.time()  # unchanged and valid: still current
                continue
            try:
                result = await self._apply()
            except Exception:
                log.exception("applying the catalog failed; retrying")
                continue
            pending = False
            self.applied_at = time.time()
            if self._source.last_error is None:
                self.confirmed_at = self.applied_at
            log.info("catalog applied", extra={"written": result.written, "deleted": result.deleted})

    async def _apply(self) -> ApplyResult:
        epoch = await self._meta.begin_load()
        result = await apply_snapshot(self._store, await self._source.load_all())
        await self._meta.finish_load(epoch, int(time.time() * 1000))
        if self._watch is not None:
            await self._watch.check()  # so the next poll does not take the old "lost" for a new loss
        return result


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at or 0))
