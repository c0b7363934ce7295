"""The settings, grouped: each group is a frozen dataclass, and each of its fields declares its option
(default, help, parser). The variable is `ENTITLEMENTS_` + the group's prefix + the field's name, upper
case, and the `serve` flag is the same name in lower case with dashes: `redis.url` is
`ENTITLEMENTS_REDIS_URL` and `--redis-url`. config.py reads them; every value is parsed once, here,
into the type the parts use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from entitlements_sidecar.domain.failure_policy import FailurePolicy
from entitlements_sidecar.options import (
    OPTION,
    OptionSpec,
    address,
    at_least_one,
    choice,
    failure_policies_by_feature,
    failure_policy,
    host_ports,
    optional_path,
    positive_float,
    positive_int,
    redis_url,
    roles,
    share,
    switch,
    tcp_address,
)


def opt(
    default: str, help: str, parse: Callable[[str], Any] = str, *, secret: bool = False, from_file: bool = False
) -> Any:
    """A field that is an option. `secret`: no flag (flags show in `ps`), never logged, also read from
    `<env>_FILE`; `from_file`: may hold a password, also read from `<env>_FILE`, never shown in errors."""
    return field(metadata={OPTION: OptionSpec(default, help, parse, secret, from_file)}, repr=not secret)


@dataclass(frozen=True, slots=True)
class ModeSettings:
    PREFIX: ClassVar[str] = ""
    source: str = opt(
        "",
        "source of truth: catalog (ENTITLEMENTS_CATALOG_PATH) or lago (Lago's API and webhooks); none: refuse to serve",
        choice("", "catalog", "lago"),
    )
    roles: frozenset[str] = opt(
        "", "source=lago only: reader (gRPC checks) and/or syncer (webhooks, queue, reconciliation); empty: both", roles
    )
    store: str = opt(
        "memory",
        "where the resolved map lives: memory (embedded, one process) or redis (shared)",
        choice("memory", "redis"),
    )
    catalog_path: Path | None = opt(
        "", "catalog file (YAML or JSON) as the source of truth; setting it alone selects source=catalog", optional_path
    )
    catalog_poll_seconds: float = opt("1.0", "how often the catalog file is checked for changes", positive_float)
    meters_path: Path | None = opt(
        "", "source=lago: a YAML file of usage meters (a catalog declares its own under meters:)", optional_path
    )


@dataclass(frozen=True, slots=True)
class RedisSettings:
    PREFIX: ClassVar[str] = "redis_"
    url: str = opt(
        "redis://127.0.0.1:6379/0",
        "Redis URL when store=redis (or ENTITLEMENTS_REDIS_URL_FILE: the path of a mounted secret holding it)",
        redis_url,
        from_file=True,
    )
    sentinels: tuple[tuple[str, int], ...] = opt(
        "", "host:port,... of Redis Sentinels; when set, the master is found through them (the URL gives db and auth)",
        host_ports,
    )  # fmt: skip
    sentinel_master: str = opt("mymaster", "the master's name to the Sentinels")
    cluster_nodes: tuple[tuple[str, int], ...] = opt(
        "", "host:port,... of Redis Cluster nodes to discover it from; when set, the map is sharded over the cluster",
        host_ports,
    )  # fmt: skip
    key_prefix: str = opt("ent:", "prefix of every Redis key and channel")
    timeout_seconds: float = opt("2.0", "Redis connect/command timeout", positive_float)


@dataclass(frozen=True, slots=True)
class CacheSettings:
    PREFIX: ClassVar[str] = ""
    l1_max_bytes: int = opt(
        "671088640",
        "in-process cache of the map, in (estimated) bytes; by default at most half the container's memory limit;"
        " 640 MiB holds about 1,000,000 subscriptions on shared plans (docs/adr/0012)",
        positive_int,
    )
    l1_max_entries: int = opt(
        "2000000", "in-process cache of the map, in entries (subscriptions + customers); 0 disables it", positive_int
    )
    answer_cache_max_entries: int = opt(
        "10000", "pre-serialized answers to repeated checks, in entries; 0 disables them (so does no L1)", positive_int
    )
    last_known_good_max_entries: int = opt(
        "10000", "fresh answers remembered for the last_known_good failure policy, in entries", at_least_one
    )


@dataclass(frozen=True, slots=True)
class GrpcSettings:
    PREFIX: ClassVar[str] = "grpc_"
    address: str = opt(
        "127.0.0.1:50051",
        "gRPC listen address (host:port, or unix:/path for a unix socket); clients use it as their target",
        address,
    )
    threads: int = opt(
        "2", "server threads for unary calls (cache hits are answered on them; see docs/adr/0004)", at_least_one
    )
    reuse_port: bool = opt(
        "false",
        "true: share the gRPC port with other sidecar processes on this host (SO_REUSEPORT); false: in use is an error",
        switch,
    )
    keepalive_seconds: float = opt(
        "10",
        "the server pings each client connection this often (HTTP/2 PING), to find clients that stopped answering",
        positive_float,
    )
    keepalive_timeout_seconds: float = opt(
        "5", "a connection whose client does not answer a ping within this is closed, and its streams end",
        positive_float,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """TLS of the gRPC port."""

    PREFIX: ClassVar[str] = "tls_"
    cert_file: str = opt(
        "", "PEM certificate (chain) for the gRPC port; with ENTITLEMENTS_TLS_KEY_FILE, gRPC is served over TLS"
    )
    key_file: str = opt("", "PEM private key for the gRPC port")
    client_ca_file: str = opt(
        "", "PEM CA bundle: when set, gRPC clients must present a certificate it signed (mutual TLS)"
    )


@dataclass(frozen=True, slots=True)
class LimitSettings:
    PREFIX: ClassVar[str] = ""
    max_batch_size: int = opt("1000", "most checks accepted in one CheckEntitlements call", positive_int)
    max_request_bytes: int = opt(
        "1048576", "largest gRPC request accepted; larger ones get RESOURCE_EXHAUSTED", at_least_one
    )
    max_watch_subjects: int = opt("100", "most subjects in one WatchEntitlements call", positive_int)
    max_watch_streams: int = opt(
        "100",
        "most WatchEntitlements streams open at once (each holds a server thread); more get RESOURCE_EXHAUSTED",
        positive_int,
    )
    max_streams_per_connection: int = opt(
        "10", "most Watch and event streams one client connection may hold (the rest get RESOURCE_EXHAUSTED)",
        at_least_one,
    )  # fmt: skip
    openfeature_keepalive_seconds: float = opt("20", "how often flagd event streams send keep_alive", positive_float)
    shutdown_grace_seconds: float = opt(
        "5.0", "on SIGTERM, how long in-flight calls may take to finish (Watch streams end at once)", positive_float
    )


@dataclass(frozen=True, slots=True)
class PolicySettings:
    PREFIX: ClassVar[str] = ""
    staleness_budget_seconds: float = opt(
        "300",
        "/readyz and gRPC health turn not-ready when the source last confirmed the map longer ago than this",
        positive_float,
    )
    failure_policy: FailurePolicy = opt(
        "last_known_good:86400",
        "answer when a check cannot be fresh: fail_closed, fail_open or last_known_good:<max age seconds>",
        failure_policy,
    )
    failure_policy_features: Mapping[str, FailurePolicy] = opt(
        "", "per-feature failure policies, e.g. sso=fail_open,seats=fail_closed", failure_policies_by_feature
    )
    deadline_margin_seconds: float = opt(
        "0.01",
        "a check's Redis and Lago reads end this long before its deadline (at least 1/10, at most 1/2 of it)",
        positive_float,
    )


@dataclass(frozen=True, slots=True)
class LogSettings:
    PREFIX: ClassVar[str] = ""
    log_level: str = opt("info", "debug, info, warning or error", choice("debug", "info", "warning", "error"))
    log_format: str = opt(
        "text", "text (one line, key=value extras) or json (one object per line, with request_id)",
        choice("text", "json"),
    )  # fmt: skip
    otel_endpoint: str = opt(
        "", "OpenTelemetry OTLP/HTTP endpoint (e.g. http://otel-collector:4318); empty: no tracing"
    )


@dataclass(frozen=True, slots=True)
class HttpSettings:
    PREFIX: ClassVar[str] = "http_"
    address: str = opt(
        "127.0.0.1:8080",
        "HTTP listen address: /healthz, /readyz, /metrics; OFREP (readers); POST /webhooks/lago (syncers)",
        tcp_address,
    )
    tls_cert_file: str = opt(
        "", "PEM certificate (chain) for the HTTP port; with ENTITLEMENTS_HTTP_TLS_KEY_FILE, HTTP is served over TLS"
    )
    tls_key_file: str = opt("", "PEM private key for the HTTP port")
    tls_client_ca_file: str = opt(
        "", "PEM CA bundle: when set, HTTP clients must present a certificate it signed (not for Lago's webhooks)"
    )
    max_signature_bytes: int = opt(
        "262144",
        "longest X-Lago-Signature header a syncer accepts (a JWT carries the body: ~1.5 x its size); other lines 8 KiB",
        positive_int,
    )
    header_timeout_seconds: float = opt(
        "10",
        "time for a request's headers to arrive, from their first byte (later: 408 and the connection closed)",
        positive_float,
    )
    body_timeout_seconds: float = opt(
        "30", "time for a request's body to arrive after its headers (later: 408 and the connection closed)",
        positive_float,
    )  # fmt: skip
    idle_timeout_seconds: float = opt(
        "60", "an HTTP connection with no request for this long is closed", positive_float
    )


@dataclass(frozen=True, slots=True)
class LagoSettings:
    PREFIX: ClassVar[str] = "lago_"
    api_url: str = opt("https://api.getlago.com", "Lago's URL (API under /api/v1)")
    api_key: str = opt(
        "", "Lago API key (or ENTITLEMENTS_LAGO_API_KEY_FILE with the path of a mounted secret)", secret=True
    )
    hmac_key: str = opt(
        "", "the organization's HMAC signature token, for hmac-signed webhooks (or ..._FILE); not the API key",
        secret=True,
    )  # fmt: skip
    jwt_issuer: str = opt("", "if set, the `iss` that jwt-signed webhooks must carry (Lago's LAGO_API_URL)")
    proxy_url: str = opt(
        "", "HTTP proxy for Lago's API; empty: HTTPS_PROXY or HTTP_PROXY (by the API URL's scheme) unless NO_PROXY "
        "names its host",
    )  # fmt: skip
    rate_limit: float = opt(
        "50", "most Lago requests per second from this process (Lago Cloud allows 50)", positive_float
    )
    timeout_seconds: float = opt("10", "timeout of one Lago request", positive_float)
    max_retries: int = opt("5", "retries of a failed Lago request (5xx, timeouts, 429) before giving up", positive_int)
    usage_rate_limit: float = opt(
        "20", "most current-usage reads per second (seeding and healing counters), a lane of its own (Lago Cloud: 200)",
        positive_float,
    )  # fmt: skip
    events_rate_limit: float = opt(
        "100", "most usage-event batches per second sent to Lago, a lane of its own (Lago Cloud allows 500)",
        positive_float,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class SyncSettings:
    PREFIX: ClassVar[str] = ""
    webhook_max_body_bytes: int = opt("1048576", "largest webhook body accepted (larger: 413)", positive_int)
    reconcile_interval_seconds: float = opt(
        "3600",
        "a reconciliation (the whole store compared with Lago, drift repaired) starts this often, or as soon as the"
        " last one ends when it takes longer",
        positive_float,
    )
    reconcile_share: float = opt(
        "0.5",
        "share of ENTITLEMENTS_LAGO_RATE_LIMIT a reconciliation may use (webhook refreshes always go first)",
        share,
    )
    queue_claim_idle_seconds: float = opt(
        "30", "a queued event unacknowledged this long (its syncer died) is taken over by another", positive_float
    )
    queue_consumer: str = opt(
        "",
        "this syncer's name in the queue's consumer group (empty: the host name); restarted, it re-reads its pending",
    )
    sync_concurrency: int = opt(
        "8", "Lago requests in flight during a full sync (the rate limit still applies)", positive_int
    )
    usage_heal_seconds: float = opt(
        "300", "how often the syncer folds Lago's current usage into the counters in use (usage sent by other paths)",
        positive_float,
    )  # fmt: skip
    usage_forwarding: bool = opt(
        "true", "source=lago: the syncer sends recorded usage to Lago as events; false if your app sends them itself",
        switch,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Settings:
    mode: ModeSettings
    redis: RedisSettings
    cache: CacheSettings
    grpc: GrpcSettings
    tls: TlsSettings
    limits: LimitSettings
    policy: PolicySettings
    logs: LogSettings
    http: HttpSettings
    lago: LagoSettings
    sync: SyncSettings
