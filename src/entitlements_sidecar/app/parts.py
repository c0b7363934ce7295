"""What each role is built from, one function per assembly. Every dependency is passed in: nothing
here reads the environment or builds a default of its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from entitlements_sidecar.config import Settings
from entitlements_sidecar.domain.events import EventQueue
from entitlements_sidecar.domain.failure_policy import FailurePolicies, PolicyReadService
from entitlements_sidecar.domain.ports import EntitlementStore, FeatureCatalog, MapMeta
from entitlements_sidecar.domain.service import ReadService
from entitlements_sidecar.domain.usage import Meters, UsageCounter
from entitlements_sidecar.domain.usage_outbox import UsageOutbox
from entitlements_sidecar.domain.usage_service import UsageService
from entitlements_sidecar.metrics import Metrics
from entitlements_sidecar.sources.lago.client import LagoClient
from entitlements_sidecar.sources.lago.current_usage import LagoCurrentUsage
from entitlements_sidecar.sources.lago.events import LagoEventSink
from entitlements_sidecar.sources.lago.full_sync import FullSync
from entitlements_sidecar.sources.lago.rate_limit import TokenBucket
from entitlements_sidecar.sources.lago.refresher import Refresher
from entitlements_sidecar.sources.lago.signatures import SignatureVerifier
from entitlements_sidecar.sources.lago.webhooks import LagoWebhooks
from entitlements_sidecar.sources.meters_file import load_meters
from entitlements_sidecar.store.cached import CachedStore
from entitlements_sidecar.store.checkpoint_memory import MemoryCheckpoints
from entitlements_sidecar.store.checkpoint_redis import RedisCheckpoints
from entitlements_sidecar.store.map_meta_memory import MemoryMapMeta
from entitlements_sidecar.store.map_meta_redis import RedisMapMeta
from entitlements_sidecar.store.memory import MemoryStore
from entitlements_sidecar.store.memory_queue import MemoryQueue
from entitlements_sidecar.store.redis_connection import RedisClient, open_redis
from entitlements_sidecar.store.redis_queue import RedisStreamQueue
from entitlements_sidecar.store.redis_store import RedisStore
from entitlements_sidecar.store.usage_memory import MemoryUsageCounter
from entitlements_sidecar.store.usage_outbox_memory import MemoryUsageOutbox
from entitlements_sidecar.store.usage_outbox_redis import RedisUsageOutbox
from entitlements_sidecar.store.usage_redis import RedisUsageCounter
from entitlements_sidecar.sync.map_keeper import MapKeeper
from entitlements_sidecar.sync.map_watch import MapWatch
from entitlements_sidecar.sync.usage_forwarder import UsageForwarder
from entitlements_sidecar.sync.usage_healer import UsageHealer, WithUsageEvents
from entitlements_sidecar.sync.worker import SyncWorker
from entitlements_sidecar.transport.grpc.answer_cache import AnswerCache
from entitlements_sidecar.transport.grpc.deadlines import CallDeadline
from entitlements_sidecar.transport.grpc.loop_bridge import LoopBridge
from entitlements_sidecar.transport.grpc.routing import StreamSlots
from entitlements_sidecar.transport.grpc.server import GrpcServer, Keepalive
from entitlements_sidecar.transport.grpc.servicer import EntitlementServicer
from entitlements_sidecar.transport.grpc.usage_mapping import EntitlementUsage
from entitlements_sidecar.transport.grpc.usage_servicer import UsageServicer
from entitlements_sidecar.transport.http.webhook import WebhookIntake
from entitlements_sidecar.transport.openfeature.flag_events import FlagChangeFeed
from entitlements_sidecar.transport.openfeature.flagd import FlagdService
from entitlements_sidecar.transport.openfeature.ofrep import OfrepEndpoints
from entitlements_sidecar.transport.tls import grpc_server_credentials


def redis_client(settings: Settings) -> RedisClient:
    return open_redis(
        settings.redis.url,
        settings.redis.timeout_seconds,
        sentinels=settings.redis.sentinels,
        sentinel_master=settings.redis.sentinel_master,
        cluster_nodes=settings.redis.cluster_nodes,
    )


def build_store(settings: Settings, client: RedisClient | None) -> EntitlementStore:
    if client is None:
        return MemoryStore()  # already in-process: an L1 in front would only copy it
    redis = RedisStore(client, settings.redis.key_prefix)
    if not settings.cache.l1_max_entries or not settings.cache.l1_max_bytes:
        return redis
    return CachedStore(redis, settings.cache.l1_max_entries, settings.cache.l1_max_bytes)


@dataclass(frozen=True)
class UsageParts:
    """Counters live where the map lives: shared by every sidecar on Redis, in this process otherwise. With
    forwarding (source=lago, on by default) the counters queue each recorded use in the outbox, which the
    syncer's forwarder drains into Lago."""

    counter: UsageCounter
    outbox: UsageOutbox | None  # None: nothing is forwarded


def build_usage(settings: Settings, client: RedisClient | None) -> UsageParts:
    forwarding = settings.mode.source == "lago" and settings.sync.usage_forwarding
    prefix = settings.redis.key_prefix
    if client is not None:
        claim_ms = int(settings.sync.queue_claim_idle_seconds * 1000)
        outbox = RedisUsageOutbox(client, prefix, settings.sync.queue_consumer, claim_ms) if forwarding else None
        return UsageParts(RedisUsageCounter(client, prefix), outbox)
    memory = MemoryUsageOutbox() if forwarding else None
    return UsageParts(MemoryUsageCounter(memory), memory)


def build_meters(settings: Settings) -> Callable[[], Meters]:
    """Lago mode's meters file, read once at start so a bad file is a clear error then (a catalog's meters
    come and change with it); none: no feature is metered."""
    path = settings.mode.meters_path
    loaded = load_meters(path) if path is not None else Meters()
    return lambda: loaded


def build_meta(settings: Settings, client: RedisClient | None) -> MapMeta:
    return RedisMapMeta(client, settings.redis.key_prefix) if client is not None else MemoryMapMeta()


class LagoParts:
    """What source=lago needs in any role: the client (with the one rate limit, and a lane for current
    usage), the refresher (the one writer of what Lago says), the full sync, and Lago's
    count of usage (to seed and heal counters)."""

    def __init__(self, settings: Settings, store: EntitlementStore, client: RedisClient | None, meta: MapMeta) -> None:
        lago = settings.lago
        bucket = TokenBucket(lago.rate_limit)
        self.client = LagoClient(
            lago.api_url,
            lago.api_key,
            bucket,
            timeout=lago.timeout_seconds,
            max_retries=lago.max_retries,
            usage_limiter=TokenBucket(lago.usage_rate_limit),
            proxy=lago.proxy_url,
        )
        # A full sync's reads use the same bucket's bulk lane: webhook refreshes always go first.
        self.bulk_client = LagoClient(
            lago.api_url, lago.api_key, bucket.bulk(), timeout=lago.timeout_seconds, max_retries=lago.max_retries,
            proxy=lago.proxy_url,
        )  # fmt: skip
        self.usage_source = LagoCurrentUsage(self.client)
        self.refresher = Refresher(self.client, store)
        checkpoints = RedisCheckpoints(client, settings.redis.key_prefix) if client is not None else MemoryCheckpoints()
        self.full_sync = FullSync(
            self.bulk_client, store, Refresher(self.bulk_client, store), meta, checkpoints,
            settings.sync.sync_concurrency,
        )  # fmt: skip
        self.reconcile_budget = TokenBucket(lago.rate_limit * settings.sync.reconcile_share)

    async def close(self) -> None:
        await self.client.close()
        await self.bulk_client.close()


@dataclass(frozen=True)
class Reader:
    """The serving side: our gRPC API and flagd's on one server, and OFREP for the HTTP port."""

    grpc: GrpcServer
    answers: AnswerCache | None
    ofrep: OfrepEndpoints
    slots: StreamSlots


def build_reader(
    settings: Settings,
    service: ReadService,
    store: EntitlementStore,
    features: FeatureCatalog,
    metrics: Metrics,
    sync_lag: Callable[[], float | None],
    usage: UsageService,
) -> Reader:
    checks = PolicyReadService(
        service,
        FailurePolicies(settings.policy.failure_policy, settings.policy.failure_policy_features),
        sync_lag,
        settings.policy.staleness_budget_seconds,
        remembered=settings.cache.last_known_good_max_entries,
        deadline=CallDeadline(settings.policy.deadline_margin_seconds),
    )
    servicer = EntitlementServicer(
        checks,
        store,
        settings.limits.max_batch_size,
        settings.limits.max_watch_subjects,
        metrics,
        EntitlementUsage(usage),
        warm_batches=isinstance(store, CachedStore),
    )
    bridge = LoopBridge()
    # Answers are kept only for checks the L1 answered (so they are never behind it): no L1, no answer cache.
    cache = settings.cache
    answers = (
        AnswerCache(servicer, store, bridge, metrics, cache.answer_cache_max_entries)
        if cache.l1_max_entries and cache.answer_cache_max_entries
        else None
    )
    slots = StreamSlots(settings.limits.max_watch_streams, settings.limits.max_streams_per_connection)
    feed = FlagChangeFeed(service, store)
    flagd = FlagdService(checks, feed, bridge, slots, features, settings.limits.openfeature_keepalive_seconds)
    grpc = GrpcServer(
        servicer,
        settings.grpc.address,
        bridge,
        answers,
        settings.grpc.threads,
        slots,
        [flagd, UsageServicer(usage, bridge, settings.limits.max_batch_size)],
        settings.limits.max_request_bytes,
        grpc_server_credentials(settings.tls.cert_file, settings.tls.key_file, settings.tls.client_ca_file),
        reuse_port=settings.grpc.reuse_port,
        keepalive=Keepalive(settings.grpc.keepalive_seconds, settings.grpc.keepalive_timeout_seconds),
    )
    return Reader(grpc, answers, OfrepEndpoints(checks, feed, features), slots)


@dataclass(frozen=True)
class Syncer:
    """The syncer role: webhooks in, queued durably, applied by the worker; the keeper reloads a lost map;
    the forwarder (when usage is forwarded) sends the usage outbox to Lago."""

    queue: EventQueue
    worker: SyncWorker
    keeper: MapKeeper
    intake: WebhookIntake
    forwarder: UsageForwarder | None
    sink: LagoEventSink | None
    healer: UsageHealer


def build_syncer(
    settings: Settings,
    redis: RedisClient | None,
    lago: LagoParts,
    watch: MapWatch,
    meta: MapMeta,
    store: EntitlementStore,
    metrics: Metrics,
    usage: UsageParts,
    meters: Callable[[], Meters],
) -> Syncer:
    queue: EventQueue
    if redis is not None:
        claim_ms = int(settings.sync.queue_claim_idle_seconds * 1000)
        queue = RedisStreamQueue(
            redis, settings.redis.key_prefix, claim_idle_ms=claim_ms, consumer=settings.sync.queue_consumer
        )
    else:
        queue = MemoryQueue()
    verifier = SignatureVerifier(
        settings.lago.hmac_key or None, lago.client.get_webhook_public_key, settings.lago.jwt_issuer or None
    )
    intake = WebhookIntake(
        "/webhooks/lago", LagoWebhooks(verifier), queue, settings.sync.webhook_max_body_bytes, metrics
    )
    healer = UsageHealer(usage.counter, lago.usage_source, store, meters, settings.sync.usage_heal_seconds)
    worker = SyncWorker(queue, WithUsageEvents(lago.refresher, healer), meta)
    sink = forwarder = None
    outbox = usage.outbox
    if outbox is not None:
        sink = LagoEventSink(
            settings.lago.api_url,
            settings.lago.api_key,
            TokenBucket(settings.lago.events_rate_limit),
            timeout=settings.lago.timeout_seconds,
            proxy=settings.lago.proxy_url,
        )
        forwarder = running = UsageForwarder(
            outbox, sink, on_delivered=metrics.usage_forwarded.inc, on_refused=metrics.usage_refused.inc
        )
        metrics.watch(
            "entitlements_usage_outbox_depth", "Recorded usage events not yet delivered to Lago", lambda: running.depth
        )
    metrics.watch(
        "entitlements_usage_healed",
        "Usage counters raised to Lago's count by healing",
        lambda: healer.raised,
        counter=True,
    )
    return Syncer(queue, worker, MapKeeper(watch, queue, lago.full_sync, store), intake, forwarder, sink, healer)
