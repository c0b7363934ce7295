"""Full load and reconciliation: make the store equal to Lago's active and pending subscriptions.

At first start it fills an empty store; afterwards it runs periodically and counts what it had to
repair (changes whose webhooks were missed), and again whenever the store lost the map. Requests go
through the client's shared rate limit. A load is recorded as complete only under the epoch it began
with (MapMeta), so a map that Redis lost part of during the load is not taken for complete. One full
sync runs at a time per process.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from entitlements_sidecar.domain.clock import now_ms
from entitlements_sidecar.domain.events import Progress, SyncReport
from entitlements_sidecar.domain.ports import EntitlementStore, MapMeta
from entitlements_sidecar.sources.lago import mapping
from entitlements_sidecar.sources.lago.errors import LagoContractError
from entitlements_sidecar.sources.lago.refresher import LagoReader, Refresher

log = logging.getLogger(__name__)


class FullSync:
    def __init__(
        self,
        lago: LagoReader,
        store: EntitlementStore,
        refresher: Refresher,
        meta: MapMeta,
        concurrency: int = 8,
    ) -> None:
        self._lago = lago
        self._store = store
        self._refresher = refresher
        self._meta = meta
        self._concurrency = concurrency
        self._running = asyncio.Lock()

    async def run(self, progress: Progress | None = None) -> SyncReport:
        async with self._running:  # a rebuild and a reconciliation one after the other, never interleaved
            return await self._run(progress)

    async def _run(self, progress: Progress | None) -> SyncReport:
        loop = asyncio.get_running_loop()
        epoch = await self._meta.begin_load()
        started = loop.time()
        features = {f["code"]: mapping.feature_definition(f) async for f in self._lago.list_features()}
        await self._store.put_features(features)
        rows: dict[str, dict[str, Any]] = {}
        async for row in self._lago.list_subscriptions(("active", "pending")):
            # One row per external id: an active row wins over a pending downgrade of it.
            if row["external_id"] not in rows or row["status"] == "active":
                rows[row["external_id"]] = row
        for code in sorted({r["plan_code"] for r in rows.values()}):
            await self._refresher.fetch_plan(code)

        done = 0
        repaired = 0
        gate = asyncio.Semaphore(self._concurrency)

        async def load(row: dict[str, Any]) -> None:
            nonlocal done, repaired
            async with gate:
                read_at = now_ms()  # each read is ordered by its own start, against concurrent webhooks
                try:
                    raw = await self._lago.get_subscription(row["external_id"], status=row["status"])
                    if raw is None:  # changed since it was listed: find its current row
                        changed = await self._refresher.refresh_subscription(row["external_id"], "full_sync")
                    else:
                        changed = await self._refresher.store_subscription(raw, read_at, "full_sync")
                except LagoContractError:
                    changed = False  # Lago answered for another subscription (logged): keep what we have
            done += 1
            repaired += changed
            if progress is not None:
                progress(done, len(rows))

        known_before = await self._store.subscription_ids()
        loads = [asyncio.ensure_future(load(row)) for row in rows.values()]
        try:
            await asyncio.gather(*loads)
        except BaseException:
            for task in loads:  # else they go on writing after this run has failed (or a rebuild restarted it)
                task.cancel()
            await asyncio.gather(*loads, return_exceptions=True)
            raise
        removed = 0
        for gone in sorted(known_before - set(rows)):
            # Not active or pending any more: re-read it, so a terminated row is stored as such.
            try:
                removed += await self._refresher.refresh_subscription(gone, "full_sync")
            except LagoContractError:
                continue  # logged by the client; the next reconciliation asks again
        recorded = await self._meta.finish_load(epoch, now_ms())
        # Rows that were new to an empty store are loads, not repairs.
        repairs = repaired - len(set(rows) - known_before)
        report = SyncReport(len(rows), max(0, repairs) + removed, removed, loop.time() - started, recorded)
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
