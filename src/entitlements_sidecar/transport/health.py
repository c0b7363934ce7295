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

import orjson
from aiohttp import web

from entitlements_sidecar.domain.map_status import MapStatus
from entitlements_sidecar.transport.metrics import Metrics

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
        confirmed_at: Callable[[], Awaitable[float | None]],
        ping: Probe | None = None,
        queue_depth: Callable[[], Awaitable[int]] | None = None,
        on_change: Callable[[bool], Awaitable[None]] | None = None,
        snapshot_at: Callable[[], Awaitable[float | None]] | None = None,
        interval: float = 1.0,
        on_freshness: Callable[[bool], None] | None = None,
        map_status: MapStatus | None = None,
        source_problem: Callable[[], str | None] | None = None,
    ) -> None:
        self._map_status = map_status
        # A problem with the source that does not stop serving (a rejected catalog edit): reported as a
        # warning; readiness turns false only once the sync lag passes the budget.
        self._source_problem = source_problem
        self._on_freshness = on_freshness  # told, at every evaluation, whether the lag is within budget
        self._snapshot_at = snapshot_at
        self._metrics = metrics
        self.budget = budget_seconds
        self._confirmed_at = confirmed_at
        self._ping = ping
        self._queue_depth = queue_depth
        self._on_change = on_change
        self._interval = interval
        self.loaded = False
        self.last = Readiness(False, {"first_load": {"ok": False, "detail": "loading"}})

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)

    async def healthz(self, request: web.Request) -> web.Response:
        return _json({"alive": True}, 200)

    async def readyz(self, request: web.Request) -> web.Response:
        readiness = await self.evaluate()
        return _json(readiness.body(self.budget), 200 if readiness.ready else 503)

    async def run(self) -> None:
        """Re-evaluate every interval and tell gRPC health when readiness changes."""
        told: bool | None = None
        while True:
            readiness = await self.evaluate()
            if readiness.ready != told and self._on_change is not None:
                await self._on_change(readiness.ready)
                if told is not None:
                    log.info("readiness changed", extra={"ready": readiness.ready, "checks": readiness.checks})
                told = readiness.ready
            await asyncio.sleep(self._interval)

    async def evaluate(self) -> Readiness:
        checks: dict[str, dict[str, Any]] = {"first_load": {"ok": self.loaded}}
        if self._map_status is not None:
            status = self._map_status
            checks["map"] = {"ok": True} if status.complete else {"ok": False, "detail": status.detail}
        if self._ping is not None:
            try:
                await asyncio.wait_for(self._ping(), timeout=2.0)
                checks["store"] = {"ok": True}
            except Exception as exc:
                checks["store"] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
        if self._source_problem is not None:
            problem = self._source_problem()
            checks["source"] = {"ok": True} if problem is None else {"ok": True, "warning": problem}
        lag: float | None = None
        try:
            confirmed = await self._confirmed_at()
            lag = None if confirmed is None else max(0.0, time.time() - confirmed)
            within = lag is not None and lag <= self.budget
            checks["sync_lag"] = {"ok": within, "seconds": lag, "budget_seconds": self.budget}
        except Exception as exc:
            checks["sync_lag"] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
        if lag is not None:
            self._metrics.sync_lag.set(lag)
        if self._on_freshness is not None:
            self._on_freshness(lag is None or lag <= self.budget)
        if self._snapshot_at is not None:
            try:
                snapshot = await self._snapshot_at()
                if snapshot is not None:
                    self._metrics.snapshot_age.set(max(0.0, time.time() - snapshot))
            except Exception:
                log.debug("snapshot age unavailable", exc_info=True)
        if self._queue_depth is not None:
            try:
                self._metrics.queue_depth.set(await self._queue_depth())
            except Exception:
                log.debug("queue depth unavailable", exc_info=True)
        self.last = Readiness(all(c["ok"] for c in checks.values()), checks, lag)
        return self.last


def _json(body: dict[str, Any], status: int) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
