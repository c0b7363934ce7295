"""The syncer's side of a lost map: when the store holds no complete load any more, the queue's consumer
group is created again (webhooks are refused with 503 until then, so Lago retries them) and the whole
map is reloaded from the source, with progress in the logs and in the syncer's readiness."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from entitlements_sidecar.domain.errors import SourceUnavailableError, StoreUnavailableError
from entitlements_sidecar.domain.events import EventQueue, MapLoader
from entitlements_sidecar.domain.ports import Change, ChangeKind, EntitlementStore
from entitlements_sidecar.sync.map_watch import MapWatch

log = logging.getLogger(__name__)
_PROGRESS_EVERY_SECONDS = 5.0


class MapKeeper:
    def __init__(
        self,
        watch: MapWatch,
        queue: EventQueue,
        full_sync: MapLoader,
        store: EntitlementStore,
        interval: float = 1.0,
    ) -> None:
        self._watch = watch  # its marker reads (readiness probes it every second) tell when the map is gone
        self._queue = queue
        self._full_sync = full_sync
        self._status = watch.status
        self._interval = interval
        self.rebuilds = 0  # metrics: times the map was found lost and completely reloaded
        self._logged_at = 0.0
        self._wake = asyncio.Event()
        store.add_listener(self._on_change)

    def _on_change(self, change: Change) -> None:
        if change.kind is ChangeKind.FEED_RESET:  # reconnected: a restarted Redis may be an empty one
            self._wake.set()

    async def run(self) -> None:
        while True:
            woken = False
            with contextlib.suppress(TimeoutError):
                woken = await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                state = await self._watch.probe() if woken else self._watch.last
            except StoreUnavailableError:
                continue
            if state is not None and state.loaded_at is None:
                await self.rebuild()
                await self._watch.check()  # read the new marker now, not a second later

    async def rebuild(self) -> None:
        log.warning("the map is gone from the store (Redis restarted empty or was flushed?): rebuilding it")
        started = time.monotonic()
        try:
            await self._queue.start()  # the consumer group went with the map
            report = await self._full_sync.run(self._progress)
        except (StoreUnavailableError, SourceUnavailableError) as exc:
            log.warning("rebuilding the map failed; trying again", extra={"error": str(exc)})
            return
        finally:
            self._status.progress = ""
        self.rebuilds += report.recorded
        log.info(
            "map rebuilt" if report.recorded else "the map was lost again while it was rebuilt; starting over",
            extra={"subscriptions": report.subscriptions, "seconds": round(time.monotonic() - started, 2)},
        )

    def _progress(self, done: int, total: int) -> None:
        self._status.progress = f"being rebuilt from the source: {done} of {total} subscriptions"
        now = time.monotonic()
        if done == total or now - self._logged_at >= _PROGRESS_EVERY_SECONDS:
            self._logged_at = now
            log.info("rebuilding the map", extra={"done": done, "total": total})
