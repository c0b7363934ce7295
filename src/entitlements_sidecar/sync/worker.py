"""Reads the event queue, applies batches, and acknowledges only what was applied."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from entitlements_sidecar import tracing
from entitlements_sidecar.domain.clock import now_ms
from entitlements_sidecar.domain.errors import SourceRejectedError, SourceUnavailableError, StoreUnavailableError
from entitlements_sidecar.domain.events import EventHandler, EventQueue, QueuedEvent
from entitlements_sidecar.domain.ports import MapMeta
from entitlements_sidecar.logs import Throttled
from entitlements_sidecar.sync.retry import REJECTED_PAUSE, delay

log = logging.getLogger(__name__)
_rejections = Throttled(log, every=60.0)


class SyncWorker:
    def __init__(
        self,
        queue: EventQueue,
        handler: EventHandler,
        meta: MapMeta,
        batch_size: int = 100,
        beat_every_ms: int = 1000,
    ) -> None:
        self._queue = queue
        self._handler = handler
        self._meta = meta
        self._batch_size = batch_size
        self._beat_every_ms = beat_every_ms
        self._last_beat = 0
        self._stopping = asyncio.Event()
        self.applied_batches = 0
        self.problem: str | None = None  # readiness shows it: why queued events are not being applied

    def stop(self) -> None:
        """Finish the current step and return from run(). Unacknowledged entries stay pending."""
        self._stopping.set()

    async def run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                batch = await self._queue.read(self._batch_size)
            except StoreUnavailableError:
                await self._pause(delay(attempt))
                attempt += 1
                continue
            attempt = 0
            if batch:
                await self._apply(batch)
            else:
                await self._beat()  # the queue is drained: the map holds everything we were told

    async def _beat(self) -> None:
        now = now_ms()
        if now - self._last_beat < self._beat_every_ms:
            return
        try:
            await self._meta.mark_confirmed(now)
            self._last_beat = now
        except StoreUnavailableError:
            log.warning("could not record the sync heartbeat", exc_info=True)

    async def _pause(self, seconds: float) -> None:
        # Sleeps end early on stop(), so shutdown never waits out a backoff.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _apply(self, batch: list[QueuedEvent]) -> None:
        attempt = 0
        while True:
            try:
                with tracing.span("apply queued events", events=len(batch)):
                    await self._handler.apply([q.event for q in batch])
                self.problem = None
                break
            except SourceRejectedError as exc:
                # Permanent until someone fixes the configuration: keep the entries pending (nothing
                # acknowledged is lost), say so in readiness, and do not hammer the source.
                self.problem = f"the source refuses the syncer, so queued events wait: {exc}"
                _rejections.log(logging.ERROR, "rejected", "sync batch refused by the source", error=str(exc))
                await self._pause(REJECTED_PAUSE)
                if self._stopping.is_set():
                    return
            except (SourceUnavailableError, StoreUnavailableError) as exc:
                # Keep the entries: they stay pending and are retried here (or claimed by another
                # syncer if this one dies), so nothing is lost while Lago is down.
                wait = delay(attempt)
                log.warning("sync batch failed, retrying", extra={"error": str(exc), "delay": wait})
                await self._pause(wait)
                if self._stopping.is_set():
                    return  # not acknowledged: the next syncer applies it
                attempt += 1
            except Exception:
                # A bug or an unexpected answer: retrying the same input would fail forever.
                # Drop the batch; periodic reconciliation repairs what it would have changed.
                log.exception("sync batch dropped", extra={"events": len(batch)})
                break
        while True:
            try:
                await self._queue.ack([q.id for q in batch])
                break
            except StoreUnavailableError:
                if self._stopping.is_set():
                    return
                await self._pause(1.0)
        self.applied_batches += 1
