"""Forwards the usage outbox to the billing source: reads entries, sends them in batches through the sink,
and acknowledges only what the sink took, so no recorded use is lost while the source is down, slow or
refusing us, or when the forwarder dies (its pending entries are read again, or claimed by another).

A delivery may repeat (a forwarder killed after the send and before the acknowledgement): the sink takes
its own transaction id coming back as delivered, so the source still counts each event once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from entitlements_sidecar.domain.errors import SourceRejectedError, SourceUnavailableError, StoreUnavailableError
from entitlements_sidecar.domain.usage_outbox import EventSink, OutboxEntry, UsageOutbox
from entitlements_sidecar.logs import Throttled
from entitlements_sidecar.sync.retry import REJECTED_PAUSE, RETRY_DELAYS, delay

log = logging.getLogger(__name__)
_failures = Throttled(log, every=30.0)


class UsageForwarder:
    def __init__(
        self,
        outbox: UsageOutbox,
        sink: EventSink,
        idle_seconds: float = 0.1,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        rejected_pause: float = REJECTED_PAUSE,
        on_delivered: Callable[[int], None] = lambda n: None,
        on_refused: Callable[[int], None] = lambda n: None,
    ) -> None:
        self._outbox = outbox
        self._sink = sink
        self._idle = idle_seconds
        self._delays = retry_delays
        self._rejected_pause = rejected_pause
        self._on_delivered = on_delivered
        self._on_refused = on_refused
        self._stopping = asyncio.Event()
        self.problem: str | None = None  # readiness shows it: why recorded usage is not reaching the source
        self.depth = 0  # entries in the outbox, as last counted (at most once a second)
        self._counted_at = 0.0

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        attempt = 0
        started = False
        while not self._stopping.is_set():
            try:
                if not started:
                    await self._outbox.start()
                    started = True
                entries = await self._outbox.read(self._sink.max_batch)
            except StoreUnavailableError as exc:
                _failures.log(logging.WARNING, "outbox", "usage outbox unreadable, retrying", error=str(exc))
                await self._pause(delay(attempt, self._delays))
                attempt += 1
                continue
            attempt = 0
            if entries:
                await self._deliver(entries)
            else:
                await self._pause(self._idle)
            await self._count()

    async def _count(self) -> None:
        if time.monotonic() - self._counted_at < 1.0:
            return
        self._counted_at = time.monotonic()
        with contextlib.suppress(StoreUnavailableError):  # the next read says so
            self.depth = await self._outbox.depth()

    async def _deliver(self, entries: list[OutboxEntry]) -> None:
        pending = entries
        attempt = 0
        while pending and not self._stopping.is_set():
            await self._count()  # also while the source is down: the backlog is what an operator wants to see
            batch = pending[: self._sink.max_batch]  # the sink may have learnt a smaller limit
            try:
                result = await self._sink.send([entry.event for entry in batch])
            except SourceRejectedError as exc:
                self.problem = f"the source refuses usage events, so they wait in the outbox: {exc}"
                _failures.log(logging.ERROR, "rejected", "usage events refused by the source", error=str(exc))
                await self._pause(self._rejected_pause)
                continue
            except SourceUnavailableError as exc:
                wait = delay(attempt, self._delays)
                _failures.log(logging.WARNING, "down", "usage events not delivered, retrying", error=str(exc))
                await self._pause(wait)
                attempt += 1
                continue
            except Exception as exc:
                # A bug or an answer we cannot read: dropping would lose usage, so keep it and say so.
                self.problem = f"usage events could not be delivered: {type(exc).__name__}: {exc}"
                _failures.log(logging.ERROR, "broken", "usage events not delivered (unexpected)", error=repr(exc))
                await self._pause(self._delays[-1])
                continue
            self.problem = None
            attempt = 0
            taken = set(result.delivered) | set(result.refused)
            delivered = [batch[i] for i in sorted(set(result.delivered))]
            refused = [(batch[i], reason) for i, reason in sorted(result.refused.items())]
            await self._settle(delivered, refused)
            if refused:
                first, reason = refused[0]
                log.error(
                    "the source refused usage events for good; kept in the refused list",
                    extra={"refused": len(refused), "transaction_id": first.event.transaction_id, "reason": reason},
                )
            # What the sink did not take (a batch rolled back for another event's error) goes again.
            pending = [entry for i, entry in enumerate(batch) if i not in taken] + pending[len(batch) :]

    async def _settle(self, delivered: Sequence[OutboxEntry], refused: Sequence[tuple[OutboxEntry, str]]) -> None:
        while True:
            try:
                if delivered:
                    await self._outbox.ack([entry.id for entry in delivered])
                if refused:
                    await self._outbox.reject([e for e, _ in refused], [reason for _, reason in refused])
                break
            except StoreUnavailableError:
                # Unacknowledged entries are sent again later; the sink takes a repeat as delivered.
                if self._stopping.is_set():
                    return
                await self._pause(1.0)
        self._on_delivered(len(delivered))
        self._on_refused(len(refused))

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
