"""Rolling reconciliation: run the map loader over and over, so changes whose webhooks never came are
repaired, and count the repairs. A cycle starts `interval` after the last one started, or at once when
that one took longer; each runs within its budget (a share of Lago's rate limit, bound by the composition
root), so it may take long without ever delaying a webhook. Its cycle time is kept for metrics and
`status`. A failed cycle is logged and resumed (the loader keeps a checkpoint) at the next start."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from entitlements_sidecar.domain.events import SyncReport
from entitlements_sidecar.domain.ports import MapMeta

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(
        self, cycle: Callable[[], Awaitable[SyncReport]], interval_seconds: float, on_repaired: Callable[[int], None]
    ) -> None:
        self._cycle = cycle
        self._interval = interval_seconds
        self._on_repaired = on_repaired
        self.cycle_seconds: float | None = None  # the last complete cycle's duration
        self.cycles = 0
        self.running_since: float | None = None  # epoch seconds, while a cycle runs

    def state(self) -> dict[str, Any]:
        """What `status` (readiness) shows of it."""
        return {"cycles": self.cycles, "cycle_seconds": self.cycle_seconds, "running": self.running_since is not None}

    async def run(self) -> None:
        wait = self._interval
        while True:
            await asyncio.sleep(wait)
            started = time.monotonic()
            self.running_since = time.time()
            try:
                report = await self._cycle()
            except Exception:
                log.exception("reconciliation failed; resuming it next interval")
                wait = self._interval
                continue
            finally:
                self.running_since = None
            self.cycle_seconds = time.monotonic() - started
            self.cycles += 1
            wait = max(0.0, self._interval - self.cycle_seconds)
            self._on_repaired(report.repaired)
            log.info(
                "reconciled",
                extra={"repaired": report.repaired, "subscriptions": report.subscriptions,
                       "seconds": round(self.cycle_seconds, 1)},
            )  # fmt: skip


async def first_load(meta: MapMeta, poll_seconds: float = 1.0) -> None:
    """Return once a complete load is recorded in the store (a reader waits for the syncers' first one)."""
    while True:
        try:
            if await meta.loaded_at() is not None:
                return
        except Exception:
            log.warning("waiting for the store", exc_info=True)
        await asyncio.sleep(poll_seconds)
