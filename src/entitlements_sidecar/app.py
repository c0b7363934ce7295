"""The composition root: builds every part from Settings, runs them, and shuts them down in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from entitlements_sidecar.config import Settings
from entitlements_sidecar.domain.ports import EntitlementStore
from entitlements_sidecar.domain.service import ReadService
from entitlements_sidecar.sources.catalog_source import CatalogSource
from entitlements_sidecar.store.cached import CachedStore
from entitlements_sidecar.store.memory import MemoryStore
from entitlements_sidecar.store.redis_store import RedisStore
from entitlements_sidecar.sync.catalog_sync import CatalogSync
from entitlements_sidecar.transport.grpc_server import GrpcServer
from entitlements_sidecar.transport.servicer import EntitlementServicer

log = logging.getLogger(__name__)


def build_store(settings: Settings) -> EntitlementStore:
    if settings.store == "memory":
        return MemoryStore()  # already in-process: an L1 in front would only copy it
    redis = RedisStore.from_url(settings.redis_url, settings.redis_key_prefix, settings.redis_timeout_seconds)
    if settings.l1_max_entries == 0:
        return redis
    return CachedStore(redis, settings.l1_max_entries)


class App:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = build_store(settings)
        self.source = CatalogSource(settings.catalog_path)
        self.sync = CatalogSync(self.source, self.store, settings.catalog_poll_seconds)
        self.service = ReadService(self.store, self.source)
        servicer = EntitlementServicer(self.service, self.store, settings.max_batch_size, settings.max_watch_subjects)
        self.grpc = GrpcServer(servicer, settings.grpc_address)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.grpc.start()  # health answers NOT_SERVING while we load
        await self.store.start()
        result = await self.sync.initial_load()
        self._tasks.append(asyncio.create_task(self.sync.run(), name="catalog-sync"))
        await self.grpc.set_serving(True)
        log.info(
            "serving",
            extra={
                "address": self.settings.grpc_address,
                "port": self.grpc.port,
                "store": self.settings.store,
                "catalog": str(self.settings.catalog_path),
                "written": result.written,
            },
        )

    async def stop(self) -> None:
        log.info("shutting down", extra={"grace_seconds": self.settings.shutdown_grace_seconds})
        await self.grpc.stop(self.settings.shutdown_grace_seconds)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.store.close()
        log.info("stopped")


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    app = App(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await app.start()
        await stopping.wait()
    finally:
        await app.stop()
