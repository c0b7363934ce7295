"""Health that tells the truth: /healthz, /readyz, and gRPC health kept equal to /readyz.

Ready means: the first load is done, the store answers, the map is complete (not lost and being
rebuilt), and the source of truth confirmed the map within the staleness budget (sync lag).
Readiness is re-evaluated every second and can turn back to not-ready at any time: it is never
latched green.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from entitlements_sidecar.domain.map_status import MapStatus
from entitlements_sidecar.domain.ports import SyncProbe
from entitlements_sidecar.metrics import Metrics
from entitlements_sidecar.transport.http.responses import json_body

log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[Any]]


@dataclass(frozen=True)
class Readiness:
    ready: bool
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    sync_lag_seconds: float | None = None

    def body(self, budget: float) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "checks": self.checks,
            "sync_lag_seconds": self.sync_lag_seconds,
            "staleness_budget_seconds": budget,
        }


class HealthMonitor:
    def __init__(
        self,
        metrics: Metrics,
        budget_seconds: float,
        sync: SyncProbe,
        map_status: MapStatus,
        ping: Probe,
        queue_depth: Callable[[], Awaitable[int]] | None = None,
        interval: float = 1.0,
    ) -> None:
        self._metrics = metrics
        self.budget = budget_seconds
        self._sync = sync
        self._map_status = map_status
        self._ping = ping  # one read of the map's marker: the store answers, and the sync state is current
        self._queue_depth = queue_depth
        self._interval = interval
        self._on_change: list[Callable[[bool], Awaitable[None]]] = []
        self._on_freshness: list[Callable[[bool], None]] = []
        self.loaded = False
        # Set while the first load's reads of each subscription go on after its listing made the map
        # answer: ready, but some answers are still provisional (flagged stale), which status shows.
        self.reads_pending = False
        self.last = Readiness(False, {"first_load": {"ok": False, "detail": "loading"}})

    def on_change(self, listener: Callable[[bool], Awaitable[None]]) -> None:
        """Told when readiness turns (gRPC health follows it)."""
        self._on_change.append(listener)

    def on_freshness(self, listener: Callable[[bool], None]) -> None:
        """Told at every evaluation whether the sync lag is within the budget (the answer cache's freshness)."""
        self._on_freshness.append(listener)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)

    async def healthz(self, request: web.Request) -> web.Response:
        return json_body({"alive": True}, 200)

    async def readyz(self, request: web.Request) -> web.Response:
        readiness = await self.evaluate()
        return json_body(readiness.body(self.budget), 200 if readiness.ready else 503)

    async def run(self) -> None:
        """Re-evaluate every interval and tell the listeners when readiness changes."""
        told: bool | None = None
        while True:
            readiness = await self.evaluate()
            if readiness.ready != told:
                for listener in self._on_change:
                    await listener(readiness.ready)
                if told is not None:
                    log.info("readiness changed", extra={"ready": readiness.ready, "checks": readiness.checks})
                told = readiness.ready
            await asyncio.sleep(self._interval)

    async def evaluate(self) -> Readiness:
        status = self._map_status
        checks: dict[str, dict[str, Any]] = {
            "first_load": {"ok": self.loaded, "reads_pending": self.reads_pending},
            "map": {"ok": True} if status.complete else {"ok": False, "detail": status.detail},
        }
        try:
            await asyncio.wait_for(self._ping(), timeout=2.0)
            checks["store"] = {"ok": True}
        except Exception as exc:
            checks["store"] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
        problem = self._sync.problem()
        checks["source"] = {"ok": True} if problem is None else {"ok": True, "warning": problem}
        reconciliation = self._sync.reconciliation()
        if reconciliation is not None:
            checks["reconciliation"] = {"ok": True, **reconciliation}
        confirmed = self._sync.confirmed_at()
        lag = None if confirmed is None else max(0.0, time.time() - confirmed)
        checks["sync_lag"] = {
            "ok": lag is not None and lag <= self.budget,
            "seconds": lag,
            "budget_seconds": self.budget,
        }
        if lag is not None:
            self._metrics.sync_lag.set(lag)
        for listener in self._on_freshness:
            listener(lag is None or lag <= self.budget)
        snapshot = self._sync.snapshot_at()
        if snapshot is not None:
            self._metrics.snapshot_age.set(max(0.0, time.time() - snapshot))
        if self._queue_depth is not None:
            try:
                self._metrics.queue_depth.set(await self._queue_depth())
            except Exception:
                log.debug("queue depth unavailable", exc_info=True)
        self.last = Readiness(all(c["ok"] for c in checks.values()), checks, lag)
        return self.last
