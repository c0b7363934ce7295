"""Full load and reconciliation: make the store equal to Lago's active and pending subscriptions.

It streams, in two phases, with a checkpoint (docs/adr/0012):
1. list: Lago's listing, page by page (N/100 requests). A subscription the map does not hold yet gets
   its plan-level answer at once, flagged provisional (stale) until its own read: a cold start answers
   every subscription long before it has read each one. The load is recorded after this phase.
2. detail: a walk over the map's ids; each one not confirmed since this run began (by this run, or by
   a webhook meanwhile) is read from Lago (one request) and stored. Gone ones are found the same way.
Memory stays one page (and `concurrency` reads) whatever the number of subscriptions. After each page
or step the checkpoint records where the run is, so a syncer killed halfway resumes there rather than
from zero; the checkpoint lives with the map, under the map's epoch (MapMeta), and a load is recorded
as complete only under the epoch it began with. One full sync runs at a time per process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from entitlements_sidecar.domain.clock import now_ms
from entitlements_sidecar.domain.events import Progress, SyncReport
from entitlements_sidecar.domain.model import SubscriptionStatus
from entitlements_sidecar.domain.ports import (
    CheckpointStore,
    EntitlementStore,
    MapMeta,
    StoredOwnPart,
    SyncCheckpoint,
)
from entitlements_sidecar.sources.lago import mapping
from entitlements_sidecar.sources.lago.errors import LagoContractError
from entitlements_sidecar.sources.lago.rate_limit import Limiter
from entitlements_sidecar.sources.lago.refresher import LagoReader, Refresher

log = logging.getLogger(__name__)
Json = dict[str, Any]
_STATUSES = ("active", "pending")
_WALK = 200  # ids per detail step


class LagoLister(LagoReader, Protocol):
    async def subscription_page(
        self, statuses: Sequence[str], page: int, per_page: int = ...
    ) -> tuple[list[Json], int | None, int | None]: ...


@dataclass
class _Counts:
    listed: int = 0
    new: int = 0  # provisional entries written: loads, not repairs
    read: int = 0
    repaired: int = 0
    removed: int = 0
    total: int = 0


class FullSync:
    def __init__(
        self,
        lago: LagoLister,
        store: EntitlementStore,
        refresher: Refresher,
        meta: MapMeta,
        checkpoints: CheckpointStore,
        concurrency: int = 8,
        per_page: int = 100,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self._lago = lago
        self._store = store
        self._refresher = refresher
        self._meta = meta
        self._checkpoints = checkpoints
        self._concurrency = concurrency
        self._per_page = per_page
        self._clock_ms = clock_ms
        self._running = asyncio.Lock()
        self._budget: Limiter | None = None
        self.listed = asyncio.Event()  # a run got past its listing: every listed subscription answers

    async def run(self, progress: Progress | None = None, budget: Limiter | None = None) -> SyncReport:
        """`budget`: a limiter every Lago request of this run also waits for (a reconciliation's share of
        the rate limit); without one, the run takes what the bulk lane leaves it."""
        async with self._running:  # a rebuild and a reconciliation one after the other, never interleaved
            self._budget = budget
            try:
                return await self._run(progress)
            finally:
                self._budget = None

    async def pending(self) -> bool:
        """A run was interrupted (the syncer was killed): the next one resumes it."""
        return await self._checkpoints.read() is not None

    async def _run(self, progress: Progress | None) -> SyncReport:
        loop = asyncio.get_running_loop()
        started = loop.time()
        epoch = await self._meta.begin_load()
        checkpoint = await self._checkpoints.read()
        if checkpoint is None or checkpoint.epoch != epoch:  # none, or of a map that was lost since
            checkpoint = SyncCheckpoint(epoch, self._clock_ms(), "list", 1)
            features = {f["code"]: mapping.feature_definition(f) async for f in self._lago.list_features()}
            await self._store.put_features(features)
            await self._checkpoints.write(checkpoint)
        else:
            log.info("resuming the full sync", extra={"phase": checkpoint.phase, "position": checkpoint.position})
        counts = _Counts()
        if checkpoint.phase == "list":
            checkpoint = await self._list(checkpoint, counts, progress)
            # Every listed subscription answers now (provisional ones flagged): readers may start.
            await self._meta.finish_load(epoch, self._clock_ms())
        self.listed.set()
        await self._detail(checkpoint, counts, progress)
        recorded = await self._meta.finish_load(epoch, self._clock_ms())
        await self._checkpoints.clear()
        report = SyncReport(
            max(counts.listed, counts.read), counts.repaired + counts.removed, counts.removed, loop.time() - started,
            recorded,
        )  # fmt: skip
        if not recorded:
            log.warning("the store lost the map during the full sync: not recorded as complete")
        log.info(
            "full sync done",
            extra={
                "subscriptions": report.subscriptions,
                "repaired": report.repaired,
                "seconds": round(report.seconds, 2),
            },
        )
        return report

    async def _list(self, checkpoint: SyncCheckpoint, counts: _Counts, progress: Progress | None) -> SyncCheckpoint:
        page: int | None = checkpoint.position
        while page is not None:
            await self._spend()
            observed = self._clock_ms()
            rows, following, total = await self._lago.subscription_page(_STATUSES, page, self._per_page)
            counts.total = total or counts.total
            await self._provisional(rows, observed, counts)
            counts.listed += len(rows)
            page = following
            checkpoint = (
                replace(checkpoint, position=page or 0) if page else replace(checkpoint, phase="detail", position=0)
            )
            await self._checkpoints.write(checkpoint)
        return checkpoint

    async def _provisional(self, rows: list[Json], observed: int, counts: _Counts) -> None:
        for code in sorted({r["plan_code"] for r in rows}):
            if await self._store.plan(code) is None:
                await self._refresher.fetch_plan(code)
        # One row per id: an active row wins over a pending downgrade of it (the listing holds both).
        chosen: dict[str, Json] = {}
        for row in rows:
            if row["external_id"] not in chosen or row["status"] == "active":
                chosen[row["external_id"]] = row
        definitions = [mapping.listed_definition(row) for row in chosen.values()]
        results = await self._store.put_subscriptions(definitions, observed, provisional=True)
        counts.new += sum(r.changed for r in results)

    async def _detail(self, checkpoint: SyncCheckpoint, counts: _Counts, progress: Progress | None) -> None:
        gate = asyncio.Semaphore(self._concurrency)
        cursor = checkpoint.position
        walked = 0
        while True:
            following, ids = await self._store.id_page(cursor, _WALK)
            parts = await self._store.own_parts(ids)
            due = [(i, p) for i, p in zip(ids, parts, strict=True) if _unconfirmed(p, checkpoint.started_ms)]
            reads = [asyncio.ensure_future(self._read(i, p, gate, counts)) for i, p in due]
            try:
                await asyncio.gather(*reads)
            except BaseException:
                for task in reads:  # else they go on writing after this run has failed (or a rebuild restarted it)
                    task.cancel()
                await asyncio.gather(*reads, return_exceptions=True)
                raise
            walked += len(ids)
            if progress is not None:  # the reads are the long part (N requests, the listing N/100)
                progress(walked, max(walked, counts.listed, counts.total))
            cursor = following
            await self._checkpoints.write(replace(checkpoint, phase="detail", position=cursor))
            if cursor == 0:
                return

    async def _read(
        self, external_id: str, part: StoredOwnPart | None, gate: asyncio.Semaphore, counts: _Counts
    ) -> None:
        async with gate:
            await self._spend()
            read_at = self._clock_ms()  # each read is ordered by its own start, against concurrent webhooks
            pending = part is not None and part.definition.status is SubscriptionStatus.PENDING
            try:
                raw = await self._lago.get_subscription(external_id, status="pending" if pending else None)
                if raw is None:  # not active (or pending) any more: find its current row, or that it is gone
                    before = await self._store.definition(external_id)
                    changed = await self._refresher.refresh_subscription(external_id, "full_sync")
                    gone = before is not None and await self._store.definition(external_id) is None
                    counts.removed += gone
                    counts.repaired += changed and not gone and not (part is not None and part.provisional)
                else:
                    changed = await self._refresher.store_subscription(raw, read_at, "full_sync")
                    counts.repaired += changed and not (part is not None and part.provisional)
            except LagoContractError:
                pass  # Lago answered for another subscription (logged): keep what we have
            counts.read += 1

    async def _spend(self) -> None:
        if self._budget is not None:
            await self._budget.acquire()


def _unconfirmed(part: StoredOwnPart | None, since_ms: int) -> bool:
    # Said at the run's first millisecond counts as before it: a run right after another re-reads all.
    return part is None or part.provisional or part.observed_ms <= since_ms
