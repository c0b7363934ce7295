"""Keeps a process's MapStatus true: is a complete load in the store, and has it stayed there?

`probe` reads the map's marker (MapMeta) in one round trip; readiness calls it every second, so it is
also the probe that the store answers. The change feed wakes it at once: a Redis that restarts empty
drops every connection, so the feed notices within a round trip, and until the marker is read again
the map is doubted. A flush without a restart is seen at the next probe.
"""

from __future__ import annotations

import asyncio
import logging

from entitlements_sidecar.domain.errors import StoreUnavailableError
from entitlements_sidecar.domain.map_status import MapStatus
from entitlements_sidecar.domain.ports import Change, ChangeKind, EntitlementStore, MapMeta, MapState

log = logging.getLogger(__name__)

LOST = "no complete load is in the store: it was lost (Redis restarted empty or was flushed?) or is being rebuilt"


class MapWatch:
    def __init__(self, meta: MapMeta, status: MapStatus, store: EntitlementStore) -> None:
        self._meta = meta
        self.status = status
        self.last: MapState | None = None  # the last marker read (readiness takes the sync lag from it)
        self._wake = asyncio.Event()
        self._seen_complete = False
        self._lost = False
        store.add_listener(self._on_change)

    @property
    def lost(self) -> bool:
        """The marker was read and a complete load that was there is gone."""
        return self._lost

    def _on_change(self, change: Change) -> None:
        if change.kind in (ChangeKind.FEED_LOST, ChangeKind.FEED_RESET):
            if self.status.complete:
                self.status.doubt("the store's change feed was interrupted; checking that the map is still there")
            self._wake.set()

    async def run(self) -> None:
        """Probe whenever the change feed broke or came back (readiness probes every second anyway)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.check()

    async def check(self) -> None:
        try:
            await self.probe()
        except StoreUnavailableError:
            return  # reads fail too, and the failure policy answers them; the next probe tells

    async def probe(self) -> MapState:
        """Read the marker and update the status; raises StoreUnavailableError when the store does not answer."""
        state = self.last = await self._meta.read()
        if state.loaded_at is not None:
            if self._lost:
                log.info("the map is complete again")
            self._lost = False
            self._seen_complete = True
            self.status.confirm()
        else:
            if self._seen_complete and not self._lost:
                log.warning("the map is gone from the store; answers for subjects it lacks are not authoritative")
                self._lost = True
            self.status.doubt(LOST)
        return state
