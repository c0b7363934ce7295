"""Periodic reconciliation: run the map loader every interval, so changes whose webhooks never came are
repaired, and count the repairs. A failed run is logged and tried again at the next interval."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from entitlements_sidecar.domain.events import MapLoader
from entitlements_sidecar.domain.ports import MapMeta

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, loader: MapLoader, interval_seconds: float, on_repaired: Callable[[int], None]) -> None:
        self._loader = loader
        self._interval = interval_seconds
        self._on_repaired = on_repaired

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                report = await self._loader.run()
            except Exception:
                log.exception("reconciliation failed; trying again next interval")
                continue
            self._on_repaired(report.repaired)
            log.info("reconciled", extra={"repaired": report.repaired, "subscriptions": report.subscriptions})


async def first_load(meta: MapMeta, poll_seconds: float = 1.0) -> None:
    """Return once a complete load is recorded in the store (a reader waits for the syncers' first one)."""
    while True:
        try:
            if await meta.loaded_at() is not None:
                return
        except Exception:
            log.warning("waiting for the store", exc_info=True)
        await asyncio.sleep(poll_seconds)
