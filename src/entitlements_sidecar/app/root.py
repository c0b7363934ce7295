"""Puts the parts for the configured roles together, runs them, and shuts them down in order.

- source=catalog: every process loads the catalog file and polls it (writes are idempotent).
- source=lago: the `syncer` role runs the webhook intake, the queue worker and reconciliation; the
  `reader` role serves gRPC (ours and flagd's) and OFREP, and has loaded once a full load is
  recorded in the store.
- Every process serves /healthz, /readyz and /metrics on the HTTP port; readiness (and gRPC
  health) follow HealthMonitor, never latched.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from entitlements_sidecar import tracing
from entitlements_sidecar.app.parts import (
    LagoParts,
    Reader,
    Syncer,
    build_meta,
    build_meters,
    build_reader,
    build_store,
    build_syncer,
    build_usage,
    redis_client,
)
from entitlements_sidecar.config import Settings
from entitlements_sidecar.domain.errors import ConfigError
from entitlements_sidecar.domain.events import Progress, SyncReport
from entitlements_sidecar.domain.map_status import MapStatus
from entitlements_sidecar.domain.ports import EntitlementSource, FeatureCatalog, MapMeta, SyncProbe
from entitlements_sidecar.domain.service import ReadService
from entitlements_sidecar.domain.usage import Meters, UsageSource
from entitlements_sidecar.domain.usage_service import UsageService
from entitlements_sidecar.metrics import Metrics
from entitlements_sidecar.sources.catalog_source import CatalogSource
from entitlements_sidecar.sources.lago.source import LagoSource
from entitlements_sidecar.store.cached import CachedStore
from entitlements_sidecar.store.features_timed import TimedFeatureCatalog
from entitlements_sidecar.store.map_meta_redis import RedisMapMeta
from entitlements_sidecar.store.redis_errors import redis_failures
from entitlements_sidecar.store.redis_store import RedisStore
from entitlements_sidecar.store.usage_spill import UsageSpill
from entitlements_sidecar.sync.catalog_sync import CatalogSync
from entitlements_sidecar.sync.map_watch import MapWatch
from entitlements_sidecar.sync.probes import CatalogProbe, MarkerProbe
from entitlements_sidecar.sync.reconciler import Reconciler, first_load
from entitlements_sidecar.sync.usage_forwarder import UsageForwarder
from entitlements_sidecar.transport.grpc.server import GrpcServer
from entitlements_sidecar.transport.http.guard import HttpLimits
from entitlements_sidecar.transport.http.health import HealthMonitor
from entitlements_sidecar.transport.http.metrics_endpoint import MetricsEndpoint
from entitlements_sidecar.transport.http.server import HttpServer, Routes
from entitlements_sidecar.transport.tls import http_ssl_context

log = logging.getLogger(__name__)


class App:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        if settings.logs.otel_endpoint:
            tracing.configure(settings.logs.otel_endpoint)
        self._redis = redis_client(settings) if settings.mode.store == "redis" else None
        self.store = build_store(settings, self._redis)
        self.meta = build_meta(settings, self._redis)
        self.map_status = MapStatus()  # "not found" is an answer only while the map is known complete
        self.map_watch = MapWatch(self.meta, self.map_status, self.store)
        self.metrics = metrics = Metrics()
        status = self.map_status
        metrics.watch("entitlements_map_complete", "1 while the store holds a full load", lambda: status.complete)
        metrics.watch(
            "entitlements_redis_errors", "Redis commands that failed or timed out", redis_failures, counter=True
        )
        if isinstance(self.store, CachedStore):
            cached = self.store
            metrics.watch_l1(lambda: (cached.hits, cached.misses))
        self._tasks: list[asyncio.Task[None]] = []
        self.reconciler: Reconciler | None = None
        routes: list[Routes] = [MetricsEndpoint(metrics)]
        self.catalog_sync: CatalogSync | None = None
        self.lago: LagoParts | None = None
        self.syncer: Syncer | None = None
        usage_parts = build_usage(settings, self._redis)
        usage_source: UsageSource | None = None
        source: EntitlementSource
        features: FeatureCatalog
        if settings.mode.source == "catalog":
            assert settings.mode.catalog_path is not None  # config checked it
            catalog = CatalogSource(settings.mode.catalog_path, self.store)
            self.catalog_sync = CatalogSync(
                catalog, self.store, self.meta, settings.mode.catalog_poll_seconds, self.map_watch
            )
            source = features = catalog
            meters: Callable[[], Meters] = catalog.meters
        else:
            self.lago = lago = LagoParts(settings, self.store, self._redis, self.meta)
            metrics.watch(
                "entitlements_lago_rows_rejected",
                "Rows Lago returned that did not match what was asked (another id or status); written nowhere",
                lambda: lago.client.rejected_rows + lago.bulk_client.rejected_rows,
                counter=True,
            )
            source = LagoSource(lago.client, lago.refresher, self.store)
            meters = build_meters(settings)
            usage_source = lago.usage_source
            features = TimedFeatureCatalog(self.store)
            if "syncer" in settings.mode.roles:
                self.syncer = syncer = build_syncer(
                    settings, self._redis, lago, self.map_watch, self.meta, self.store, metrics, usage_parts, meters
                )
                metrics.watch(
                    "entitlements_map_rebuilds",
                    "Times this syncer found the map gone from the store and reloaded it",
                    lambda: syncer.keeper.rebuilds,
                    counter=True,
                )
                routes.append(syncer.intake)
        self.reader: Reader | None = None
        self.spill: UsageSpill | None = None
        if settings.mode.source == "catalog" or "reader" in settings.mode.roles:
            service = ReadService(self.store, source, self.map_status)
            forward = usage_parts.outbox is not None
            self.spill = spill = UsageSpill(usage_parts.counter) if self._redis is not None else None
            usage = UsageService(self.store, self.map_status, meters, usage_parts.counter, forward, usage_source, spill)
            if spill is not None:
                metrics.watch(
                    "entitlements_usage_spilled",
                    "Uses of fail-open meters counted here while Redis was away, not yet added to it",
                    lambda: len(spill),
                )
            self.reader = build_reader(
                settings, service, self.store, features, metrics, lambda: self.health.last.sync_lag_seconds, usage
            )
            slots = self.reader.slots
            metrics.watch_streams(lambda: slots.open)
            routes.append(self.reader.ofrep)
        probe: SyncProbe = (
            CatalogProbe(self.catalog_sync)
            if self.catalog_sync is not None
            else MarkerProbe(
                self.map_watch,
                self.syncer.worker if self.syncer else None,
                self._forwarder,
                lambda: self.reconciler.state() if self.reconciler else None,
            )
        )
        # One read of the map's marker a second (`ping`): that the store answers, whether the map is
        # complete, and (source=lago) the sync lag and snapshot age, which are taken from the same read.
        self.health = HealthMonitor(
            metrics,
            settings.policy.staleness_budget_seconds,
            probe,
            self.map_status,
            ping=self.map_watch.probe,
            queue_depth=self.syncer.queue.depth if self.syncer is not None else None,
        )
        if self.reader is not None:
            self.health.on_change(self.reader.grpc.set_serving)
            if self.reader.answers is not None:
                self.health.on_freshness(self.reader.answers.set_fresh)
        routes.append(self.health)
        rejected = metrics.http_rejected
        self.http = HttpServer(
            settings.http.address,
            routes,
            ssl_context=http_ssl_context(
                settings.http.tls_cert_file, settings.http.tls_key_file, settings.http.tls_client_ca_file
            ),
            limits=HttpLimits(
                # Only the webhook intake needs a long line: a JWT signature carries the body.
                max_signature_line=settings.http.max_signature_bytes if self.syncer is not None else 0,
                head_timeout=settings.http.header_timeout_seconds,
                body_timeout=settings.http.body_timeout_seconds,
                idle_timeout=settings.http.idle_timeout_seconds,
            ),
            on_reject=lambda reason: rejected.labels(reason).inc(),
        )

    @property
    def _forwarder(self) -> UsageForwarder | None:
        return self.syncer.forwarder if self.syncer is not None else None

    @property
    def grpc(self) -> GrpcServer | None:
        return self.reader.grpc if self.reader is not None else None

    async def start(self) -> None:
        if self.grpc is not None:
            await self.grpc.start()  # health answers NOT_SERVING while we load
        await self.http.start()  # /healthz at once; /readyz says what is missing
        self._spawn(self.health.run(), "health")
        await self.store.start()
        self._spawn(self.map_watch.run(), "map-watch")
        if self.spill is not None:
            self._spawn(self.spill.run(), "usage-spill")
        if self.catalog_sync is not None:
            result = await self.catalog_sync.initial_load()
            self._spawn(self.catalog_sync.run(), "catalog-sync")
            self._loaded(f"catalog {self.settings.mode.catalog_path}, {result.written} subscriptions written")
            return
        assert self.lago is not None
        if self.syncer is not None:
            await self._start_syncer(self.lago, self.syncer)
            self._loaded("syncer loaded")
        else:
            self._spawn(self._loaded_when_synced(self.meta), "await-first-load")

    async def _start_syncer(self, lago: LagoParts, syncer: Syncer) -> None:
        await syncer.queue.start()  # webhooks are queued (and acknowledged) even during the first load
        if await self.meta.loaded_at() is None or await lago.full_sync.pending():
            # Loaded once the listing gave every subscription its plan-level answer (flagged provisional);
            # the reads of each one go on in the background, with webhooks served meanwhile.
            self.health.reads_pending = True
            load = asyncio.create_task(self._first_load(lago), name="first-load")
            self._tasks.append(load)
            listed = asyncio.ensure_future(lago.full_sync.listed.wait())
            await asyncio.wait({load, listed}, return_when=asyncio.FIRST_COMPLETED)
            listed.cancel()
            if load.done():
                load.result()  # a first load that failed stops the start, as before
        self._spawn(syncer.worker.run(), "sync-worker")
        repairs = self.metrics.reconciliation_repairs
        budget = lago.reconcile_budget

        async def cycle() -> SyncReport:
            report = await lago.full_sync.run(budget=budget)
            self.health.reads_pending = False  # a first load that stopped is resumed and finished by a cycle
            return report

        reconciler = self.reconciler = Reconciler(cycle, self.settings.sync.reconcile_interval_seconds, repairs.inc)
        self.metrics.watch(
            "entitlements_reconcile_cycle_seconds",
            "Seconds the last complete reconciliation took (within ENTITLEMENTS_RECONCILE_SHARE of the rate limit)",
            lambda: reconciler.cycle_seconds or 0.0,
        )
        self._spawn(reconciler.run(), "reconciler")
        self._spawn(syncer.keeper.run(), "map-keeper")
        if syncer.forwarder is not None:
            self._spawn(syncer.forwarder.run(), "usage-forwarder")
        self._spawn(syncer.healer.run(), "usage-healer")

    async def _first_load(self, lago: LagoParts) -> None:
        try:
            await lago.full_sync.run()
            self.health.reads_pending = False
        except Exception:
            if not lago.full_sync.listed.is_set():
                raise  # the start waits for this and fails with it
            log.warning("the first load's reads stopped; the next reconciliation resumes them", exc_info=True)

    async def _loaded_when_synced(self, meta: MapMeta) -> None:
        await first_load(meta)
        self._loaded("the syncer's first load is in the store")

    def _loaded(self, detail: str) -> None:
        self.health.loaded = True
        self._spawn(self._announce_ready(detail), "announce-ready")

    async def _announce_ready(self, detail: str) -> None:
        await self.map_watch.check()  # the load just finished: do not wait for the next probe
        readiness = await self.health.evaluate()
        grpc = self.grpc
        if grpc is not None:
            await grpc.set_serving(readiness.ready)
        log.info(
            "serving",
            extra={
                "grpc": self.settings.grpc.address if grpc else "-",
                "grpc_port": grpc.port if grpc else "-",
                "http_port": self.http.port,
                "store": self.settings.mode.store,
                "ready": readiness.ready,
                "detail": detail,
            },
        )

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coroutine, name=name))

    async def stop(self) -> None:
        log.info("shutting down", extra={"grace_seconds": self.settings.limits.shutdown_grace_seconds})
        if self.grpc is not None:
            await self.grpc.stop(self.settings.limits.shutdown_grace_seconds)
        await self.http.stop()
        if self.syncer is not None:
            # Let the worker finish its step: cancelling a Redis read mid-reply is not always
            # prompt in redis-py, and an applied batch should be acknowledged.
            self.syncer.worker.stop()
            if self.syncer.forwarder is not None:
                self.syncer.forwarder.stop()  # a batch Lago took is acknowledged before it returns
            steps = ("sync-worker", "usage-forwarder")
            if workers := [t for t in self._tasks if t.get_name() in steps]:  # none if start failed early
                await asyncio.wait(workers, timeout=5)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=5)
            for task in stuck:
                log.warning("task did not stop in time", extra={"task": task.get_name()})
        if self.lago is not None:
            await self.lago.close()
        if self.syncer is not None and self.syncer.sink is not None:
            await self.syncer.sink.close()
        await self.store.close()
        tracing.shutdown()
        log.info("stopped")


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    app = App(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    if app.grpc is not None:
        loop.add_signal_handler(signal.SIGUSR1, app.grpc.log_calls)  # live counts (benchmarks check them)
    try:
        await app.start()
        await stopping.wait()
    finally:
        await app.stop()


async def run_full_sync(settings: Settings, progress: Progress | None = None) -> SyncReport:
    """`entitlements-sidecar sync --full`: one full load from Lago into the shared Redis."""
    if settings.mode.source != "lago":
        raise ConfigError("sync --full reads Lago: set ENTITLEMENTS_SOURCE=lago (or --source lago)")
    if settings.mode.store != "redis":
        raise ConfigError("sync --full writes the shared store: set ENTITLEMENTS_STORE=redis")
    client = redis_client(settings)
    store = RedisStore(client, settings.redis.key_prefix)
    lago = LagoParts(settings, store, client, RedisMapMeta(client, settings.redis.key_prefix))
    try:
        await store.start()
        return await lago.full_sync.run(progress)
    finally:
        await lago.close()
        await store.close()
