"""The composition root: builds every part from Settings, runs them, and shuts them down in order.

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
from collections.abc import Coroutine
from typing import Any

from entitlements_sidecar import tracing
from entitlements_sidecar.config import Settings
from entitlements_sidecar.domain.errors import ConfigError
from entitlements_sidecar.domain.events import EventQueue
from entitlements_sidecar.domain.failure_policy import FailurePolicies, PolicyReadService
from entitlements_sidecar.domain.map_status import MapStatus
from entitlements_sidecar.domain.ports import (
    EntitlementSource,
    EntitlementStore,
    FeatureCatalog,
    MapMeta,
    SyncStateStore,
)
from entitlements_sidecar.domain.service import ReadService
from entitlements_sidecar.sources.catalog_source import CatalogSource
from entitlements_sidecar.sources.lago.client import LagoClient
from entitlements_sidecar.sources.lago.rate_limit import TokenBucket
from entitlements_sidecar.sources.lago.refresher import Refresher
from entitlements_sidecar.sources.lago.signatures import SignatureVerifier
from entitlements_sidecar.sources.lago.source import LagoSource
from entitlements_sidecar.store.cached import CachedStore
from entitlements_sidecar.store.features_timed import TimedFeatureCatalog
from entitlements_sidecar.store.map_meta_memory import MemoryMapMeta
from entitlements_sidecar.store.map_meta_redis import RedisMapMeta
from entitlements_sidecar.store.memory import MemoryStore
from entitlements_sidecar.store.redis_connection import RedisClient, open_redis
from entitlements_sidecar.store.redis_queue import RedisStreamQueue
from entitlements_sidecar.store.redis_store import RedisStore
from entitlements_sidecar.store.sync_state_memory import MemorySyncState
from entitlements_sidecar.store.sync_state_redis import RedisSyncState
from entitlements_sidecar.sync.catalog_sync import CatalogSync
from entitlements_sidecar.sync.full_sync import FullSync, Progress, SyncReport
from entitlements_sidecar.sync.map_keeper import MapKeeper
from entitlements_sidecar.sync.map_watch import MapWatch
from entitlements_sidecar.sync.memory_queue import MemoryQueue
from entitlements_sidecar.sync.worker import SyncWorker
from entitlements_sidecar.transport.answer_cache import AnswerCache
from entitlements_sidecar.transport.deadlines import CallDeadline
from entitlements_sidecar.transport.flag_events import FlagChangeFeed
from entitlements_sidecar.transport.flagd_service import FlagdService
from entitlements_sidecar.transport.grpc_server import GrpcServer, Keepalive
from entitlements_sidecar.transport.health import HealthMonitor
from entitlements_sidecar.transport.http_guard import HttpLimits
from entitlements_sidecar.transport.http_server import HttpServer, Routes
from entitlements_sidecar.transport.loop_bridge import LoopBridge
from entitlements_sidecar.transport.metrics import Metrics
from entitlements_sidecar.transport.ofrep import OfrepEndpoints
from entitlements_sidecar.transport.routing_executor import StreamSlots
from entitlements_sidecar.transport.servicer import EntitlementServicer
from entitlements_sidecar.transport.tls import grpc_server_credentials, http_ssl_context
from entitlements_sidecar.transport.webhook_intake import WebhookIntake

log = logging.getLogger(__name__)


def redis_client(settings: Settings) -> RedisClient:
    return open_redis(
        settings.redis_url,
        settings.redis_timeout_seconds,
        sentinels=settings.redis_sentinels,
        sentinel_master=settings.redis_sentinel_master,
        cluster_nodes=settings.redis_cluster_nodes,
    )


def build_store(settings: Settings, client: RedisClient | None) -> EntitlementStore:
    if client is None:
        return MemoryStore()  # already in-process: an L1 in front would only copy it
    redis = RedisStore(client, settings.redis_key_prefix)
    return CachedStore(redis, settings.l1_max_entries) if settings.l1_max_entries else redis


def build_meta(settings: Settings, client: RedisClient | None) -> MapMeta:
    return RedisMapMeta(client, settings.redis_key_prefix) if client is not None else MemoryMapMeta()


class LagoParts:
    """What source=lago needs in any role."""

    def __init__(self, settings: Settings, store: EntitlementStore, client: RedisClient | None, meta: MapMeta) -> None:
        limiter = TokenBucket(settings.lago_rate_limit)
        self.client = LagoClient(
            settings.lago_api_url,
            settings.lago_api_key,
            limiter,
            timeout=settings.lago_timeout_seconds,
            max_retries=settings.lago_max_retries,
        )
        self.state: SyncStateStore = (
            RedisSyncState(client, settings.redis_key_prefix) if client is not None else MemorySyncState()
        )
        self.refresher = Refresher(self.client, store, self.state)
        self.full_sync = FullSync(self.client, store, self.state, self.refresher, meta, settings.sync_concurrency)


class App:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        if settings.otel_endpoint:
            tracing.configure(settings.otel_endpoint)
        self._redis = redis_client(settings) if settings.store == "redis" else None
        self.store = build_store(settings, self._redis)
        self.meta = build_meta(settings, self._redis)
        self.map_status = MapStatus()  # "not found" is an answer only while the map is known complete
        self.map_watch = MapWatch(self.meta, self.map_status, self.store)
        self.keeper: MapKeeper | None = None
        self.metrics = Metrics()
        status = self.map_status
        self.metrics.watch("entitlements_map_complete", "1 while the store holds a full load", lambda: status.complete)
        if isinstance(self.store, CachedStore):
            cached = self.store
            self.metrics.watch_l1(lambda: (cached.hits, cached.misses))
        self._tasks: list[asyncio.Task[None]] = []
        self.catalog_sync: CatalogSync | None = None
        self.lago: LagoParts | None = None
        self.queue: EventQueue | None = None
        self.worker: SyncWorker | None = None
        routes: list[Routes] = [self.metrics]
        source: EntitlementSource
        features: FeatureCatalog
        if settings.source == "catalog":
            assert settings.catalog_path is not None  # config checked it
            catalog = CatalogSource(settings.catalog_path)
            self.catalog_sync = CatalogSync(
                catalog, self.store, self.meta, settings.catalog_poll_seconds, watch=self.map_watch
            )
            source = features = catalog
        else:
            self.lago = LagoParts(settings, self.store, self._redis, self.meta)
            client = self.lago.client
            self.metrics.watch(
                "entitlements_lago_rows_rejected",
                "Rows Lago returned that did not match what was asked (another id or status); written nowhere",
                lambda: client.rejected_rows,
                counter=True,
            )
            source = LagoSource(self.lago.client, self.lago.refresher)
            features = TimedFeatureCatalog(self.lago.state)
            if "syncer" in settings.roles:
                routes.append(self._build_syncer(self.lago))
        self.grpc: GrpcServer | None = None
        self._answers: AnswerCache | None = None
        if settings.source == "catalog" or "reader" in settings.roles:
            routes.append(self._build_reader(ReadService(self.store, source, map_status=self.map_status), features))
        self.health = HealthMonitor(
            self.metrics,
            settings.staleness_budget_seconds,
            self._confirmed_at,
            # One read of the map's marker a second: that the store answers, whether the map is complete,
            # and (source=lago) the sync lag and snapshot age below, which are taken from the same read.
            ping=self.map_watch.probe,
            queue_depth=self.queue.depth if self.queue is not None else None,
            on_change=self.grpc.set_serving if self.grpc is not None else None,
            snapshot_at=self._snapshot_at,
            on_freshness=self._answers.set_fresh if self._answers is not None else None,
            map_status=self.map_status,
            source_problem=self.catalog_sync.problem if self.catalog_sync is not None else None,
        )
        routes.append(self.health)
        rejected = self.metrics.http_rejected
        self.http = HttpServer(
            settings.http_address,
            routes,
            ssl_context=http_ssl_context(
                settings.http_tls_cert_file, settings.http_tls_key_file, settings.http_tls_client_ca_file
            ),
            limits=HttpLimits(
                # Only the webhook intake needs a long line: a JWT signature carries the body.
                max_signature_line=settings.http_max_signature_bytes if self.queue is not None else 0,
                head_timeout=settings.http_header_timeout_seconds,
                body_timeout=settings.http_body_timeout_seconds,
                idle_timeout=settings.http_idle_timeout_seconds,
            ),
            on_reject=lambda reason: rejected.labels(reason).inc(),
        )

    def _build_reader(self, service: ReadService, features: FeatureCatalog) -> OfrepEndpoints:
        settings = self.settings
        checks = PolicyReadService(
            service,
            FailurePolicies.parse(settings.failure_policy, settings.failure_policy_features),
            lambda: self.health.last.sync_lag_seconds,
            settings.staleness_budget_seconds,
            deadline=CallDeadline(settings.deadline_margin_seconds),
        )
        servicer = EntitlementServicer(
            checks, self.store, settings.max_batch_size, settings.max_watch_subjects, self.metrics
        )
        bridge = LoopBridge()
        answers = (
            AnswerCache(servicer, self.store, bridge, self.metrics, settings.l1_max_entries)
            if settings.l1_max_entries
            else None
        )
        self._answers = answers
        slots = StreamSlots(settings.max_watch_streams, settings.max_streams_per_connection)
        self.metrics.watch_streams(lambda: slots.open)
        feed = FlagChangeFeed(service, self.store)
        flagd = FlagdService(checks, feed, bridge, slots, features, settings.openfeature_keepalive_seconds)
        self.grpc = GrpcServer(
            servicer,
            settings.grpc_address,
            bridge,
            answers,
            settings.grpc_threads,
            slots,
            flagd,
            settings.max_request_bytes,
            grpc_server_credentials(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file),
            reuse_port=settings.grpc_reuse_port,
            keepalive=Keepalive(settings.grpc_keepalive_seconds, settings.grpc_keepalive_timeout_seconds),
        )
        return OfrepEndpoints(checks, feed, features)

    def _build_syncer(self, lago: LagoParts) -> WebhookIntake:
        settings = self.settings
        if self._redis is not None:
            claim_ms = int(settings.queue_claim_idle_seconds * 1000)
            self.queue = RedisStreamQueue(
                self._redis, settings.redis_key_prefix, claim_idle_ms=claim_ms, consumer=settings.queue_consumer
            )
        else:
            self.queue = MemoryQueue()
        verifier = SignatureVerifier(
            settings.lago_hmac_key or None, lago.client.get_webhook_public_key, settings.lago_jwt_issuer or None
        )
        self.worker = SyncWorker(self.queue, lago.refresher, self.meta)
        self.keeper = keeper = MapKeeper(self.map_watch, self.queue, lago.full_sync, self.store)
        self.metrics.watch(
            "entitlements_map_rebuilds",
            "Times this syncer found the map gone from the store and reloaded it",
            lambda: keeper.rebuilds,
            counter=True,
        )
        return WebhookIntake(verifier, self.queue, settings.webhook_max_body_bytes, self.metrics)

    async def start(self) -> None:
        if self.grpc is not None:
            await self.grpc.start()  # health answers NOT_SERVING while we load
        await self.http.start()  # /healthz at once; /readyz says what is missing
        self._spawn(self.health.run(), "health")
        await self.store.start()
        self._spawn(self.map_watch.run(), "map-watch")
        if self.catalog_sync is not None:
            result = await self.catalog_sync.initial_load()
            self._spawn(self.catalog_sync.run(), "catalog-sync")
            self._loaded(f"catalog {self.settings.catalog_path}, {result.written} subscriptions written")
            return
        assert self.lago is not None
        if self.worker is not None:
            await self._start_syncer(self.lago)
            self._loaded("syncer loaded")
        else:
            self._spawn(self._loaded_when_synced(self.meta), "await-first-load")

    async def _start_syncer(self, lago: LagoParts) -> None:
        assert self.queue is not None and self.worker is not None
        await self.queue.start()  # webhooks are queued (and acknowledged) even during the first load
        if await self.meta.loaded_at() is None:
            await lago.full_sync.run()
        self._spawn(self.worker.run(), "sync-worker")
        self._spawn(self._reconcile(lago.full_sync), "reconciler")
        assert self.keeper is not None
        self._spawn(self.keeper.run(), "map-keeper")

    async def _reconcile(self, full_sync: FullSync) -> None:
        while True:
            await asyncio.sleep(self.settings.reconcile_interval_seconds)
            try:
                report = await full_sync.run()
                self.metrics.reconciliation_repairs.inc(report.repaired)
                log.info("reconciled", extra={"repaired": report.repaired, "subscriptions": report.subscriptions})
            except Exception:
                log.exception("reconciliation failed; trying again next interval")

    async def _loaded_when_synced(self, meta: MapMeta) -> None:
        while True:
            try:
                if await meta.loaded_at() is not None:
                    break
            except Exception:
                log.warning("waiting for the store", exc_info=True)
            await asyncio.sleep(1.0)
        self._loaded("the syncer's first load is in the store")

    def _loaded(self, detail: str) -> None:
        self.health.loaded = True
        self._spawn(self._announce_ready(detail), "announce-ready")

    async def _announce_ready(self, detail: str) -> None:
        await self.map_watch.check()  # the load just finished: do not wait for the next probe
        readiness = await self.health.evaluate()
        if self.grpc is not None:
            await self.grpc.set_serving(readiness.ready)
        log.info(
            "serving",
            extra={
                "grpc": self.settings.grpc_address if self.grpc else "-",
                "grpc_port": self.grpc.port if self.grpc else "-",
                "http_port": self.http.port,
                "store": self.settings.store,
                "ready": readiness.ready,
                "detail": detail,
            },
        )

    async def _confirmed_at(self) -> float | None:
        if self.catalog_sync is not None:
            return self.catalog_sync.confirmed_at
        at_ms = self.map_watch.last.confirmed_at if self.map_watch.last else None
        return None if at_ms is None else at_ms / 1000

    async def _snapshot_at(self) -> float | None:
        if self.catalog_sync is not None:
            return self.catalog_sync.applied_at
        at_ms = self.map_watch.last.loaded_at if self.map_watch.last else None
        return None if at_ms is None else at_ms / 1000

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coroutine, name=name))

    async def stop(self) -> None:
        log.info("shutting down", extra={"grace_seconds": self.settings.shutdown_grace_seconds})
        if self.grpc is not None:
            await self.grpc.stop(self.settings.shutdown_grace_seconds)
        await self.http.stop()
        if self.worker is not None:
            # Let the worker finish its step: cancelling a Redis read mid-reply is not always
            # prompt in redis-py, and an applied batch should be acknowledged.
            self.worker.stop()
            if workers := [t for t in self._tasks if t.get_name() == "sync-worker"]:  # none if start failed early
                await asyncio.wait(workers, timeout=5)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=5)
            for task in stuck:
                log.warning("task did not stop in time", extra={"task": task.get_name()})
        if self.lago is not None:
            await self.lago.client.close()
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
    if settings.source != "lago":
        raise ConfigError("sync --full reads Lago: set ENTITLEMENTS_SOURCE=lago (or --source lago)")
    if settings.store != "redis":
        raise ConfigError("sync --full writes the shared store: set ENTITLEMENTS_STORE=redis")
    client = redis_client(settings)
    store = RedisStore(client, settings.redis_key_prefix)
    lago = LagoParts(settings, store, client, RedisMapMeta(client, settings.redis_key_prefix))
    try:
        await store.start()
        return await lago.full_sync.run(progress)
    finally:
        await lago.client.close()
        await store.close()
