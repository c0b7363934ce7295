"""Configuration: the only module that reads the environment.

Every option has an `ENTITLEMENTS_*` variable and a matching `serve` flag; a flag wins over the
variable, which wins over the default. The README's option table is checked against OPTIONS.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from entitlements_sidecar.domain.errors import ConfigError
from entitlements_sidecar.options import (
    Option,
    address,
    at_least_one,
    choice,
    failure_policies_by_feature,
    failure_policy,
    host_ports,
    positive_float,
    positive_int,
    read_secret,
    roles,
    tcp_address,
    tls_files,
)

OPTIONS: tuple[Option, ...] = (
    Option(
        "grpc_address",
        "ENTITLEMENTS_GRPC_ADDRESS",
        "127.0.0.1:50051",
        "gRPC listen address (host:port, or unix:/path for a unix socket); clients use it as their target",
        address,
    ),
    Option(
        "store",
        "ENTITLEMENTS_STORE",
        "memory",
        "where the resolved map lives: memory (embedded, one process) or redis (shared)",
        choice("memory", "redis"),
    ),
    Option("redis_url", "ENTITLEMENTS_REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL when store=redis"),
    Option(
        "redis_sentinels",
        "ENTITLEMENTS_REDIS_SENTINELS",
        "",
        "host:port,... of Redis Sentinels; when set, the master is found through them (the URL gives db and auth)",
        host_ports,
    ),
    Option(
        "redis_sentinel_master", "ENTITLEMENTS_REDIS_SENTINEL_MASTER", "mymaster", "the master's name to the Sentinels"
    ),
    Option(
        "redis_cluster_nodes",
        "ENTITLEMENTS_REDIS_CLUSTER_NODES",
        "",
        "host:port,... of Redis Cluster nodes to discover it from; when set, the map is sharded over the cluster",
        host_ports,
    ),
    Option("redis_key_prefix", "ENTITLEMENTS_REDIS_KEY_PREFIX", "ent:", "prefix of every Redis key and channel"),
    Option(
        "redis_timeout_seconds",
        "ENTITLEMENTS_REDIS_TIMEOUT_SECONDS",
        "2.0",
        "Redis connect/command timeout",
        positive_float,
    ),
    Option(
        "l1_max_entries",
        "ENTITLEMENTS_L1_MAX_ENTRIES",
        "10000",
        "in-process cache size in entries (subscriptions + customers); 0 disables it",
        positive_int,
    ),
    Option(
        "catalog_path",
        "ENTITLEMENTS_CATALOG_PATH",
        "examples/catalog.yaml",
        "catalog file (YAML or JSON) used as the source of truth",
        Path,
    ),
    Option(
        "catalog_poll_seconds",
        "ENTITLEMENTS_CATALOG_POLL_SECONDS",
        "1.0",
        "how often the catalog file is checked for changes",
        positive_float,
    ),
    Option(
        "max_batch_size",
        "ENTITLEMENTS_MAX_BATCH_SIZE",
        "1000",
        "most checks accepted in one CheckEntitlements call",
        positive_int,
    ),
    Option(
        "max_request_bytes",
        "ENTITLEMENTS_MAX_REQUEST_BYTES",
        "1048576",
        "largest gRPC request accepted; larger ones get RESOURCE_EXHAUSTED",
        at_least_one,
    ),
    Option(
        "max_watch_subjects",
        "ENTITLEMENTS_MAX_WATCH_SUBJECTS",
        "100",
        "most subjects in one WatchEntitlements call",
        positive_int,
    ),
    Option(
        "tls_cert_file",
        "ENTITLEMENTS_TLS_CERT_FILE",
        "",
        "PEM certificate (chain) for the gRPC port; with ENTITLEMENTS_TLS_KEY_FILE, gRPC is served over TLS",
        str,
    ),
    Option("tls_key_file", "ENTITLEMENTS_TLS_KEY_FILE", "", "PEM private key for the gRPC port", str),
    Option(
        "tls_client_ca_file",
        "ENTITLEMENTS_TLS_CLIENT_CA_FILE",
        "",
        "PEM CA bundle: when set, gRPC clients must present a certificate it signed (mutual TLS)",
        str,
    ),
    Option(
        "http_tls_cert_file",
        "ENTITLEMENTS_HTTP_TLS_CERT_FILE",
        "",
        "PEM certificate (chain) for the HTTP port; with ENTITLEMENTS_HTTP_TLS_KEY_FILE, HTTP is served over TLS",
        str,
    ),
    Option("http_tls_key_file", "ENTITLEMENTS_HTTP_TLS_KEY_FILE", "", "PEM private key for the HTTP port", str),
    Option(
        "http_tls_client_ca_file",
        "ENTITLEMENTS_HTTP_TLS_CLIENT_CA_FILE",
        "",
        "PEM CA bundle: when set, HTTP clients must present a certificate it signed (not for Lago's webhooks)",
        str,
    ),
    Option(
        "max_watch_streams",
        "ENTITLEMENTS_MAX_WATCH_STREAMS",
        "100",
        "most WatchEntitlements streams open at once (each holds a server thread); more get RESOURCE_EXHAUSTED",
        positive_int,
    ),
    Option(
        "grpc_threads",
        "ENTITLEMENTS_GRPC_THREADS",
        "2",
        "server threads for unary calls (cache hits are answered on them; see docs/adr/0004)",
        at_least_one,
    ),
    Option(
        "staleness_budget_seconds",
        "ENTITLEMENTS_STALENESS_BUDGET_SECONDS",
        "300",
        "/readyz and gRPC health turn not-ready when the source last confirmed the map longer ago than this",
        positive_float,
    ),
    Option(
        "failure_policy",
        "ENTITLEMENTS_FAILURE_POLICY",
        "last_known_good:86400",
        "answer when a check cannot be fresh: fail_closed, fail_open or last_known_good:<max age seconds>",
        failure_policy,
    ),
    Option(
        "failure_policy_features",
        "ENTITLEMENTS_FAILURE_POLICY_FEATURES",
        "",
        "per-feature failure policies, e.g. sso=fail_open,seats=fail_closed",
        failure_policies_by_feature,
    ),
    Option(
        "openfeature_keepalive_seconds",
        "ENTITLEMENTS_OPENFEATURE_KEEPALIVE_SECONDS",
        "20",
        "how often flagd event streams send keep_alive",
        positive_float,
    ),
    Option(
        "shutdown_grace_seconds",
        "ENTITLEMENTS_SHUTDOWN_GRACE_SECONDS",
        "5.0",
        "on SIGTERM, how long in-flight calls may take to finish (Watch streams end at once)",
        positive_float,
    ),
    Option(
        "log_level",
        "ENTITLEMENTS_LOG_LEVEL",
        "info",
        "debug, info, warning or error",
        choice("debug", "info", "warning", "error"),
    ),
    Option(
        "otel_endpoint",
        "ENTITLEMENTS_OTEL_ENDPOINT",
        "",
        "OpenTelemetry OTLP/HTTP endpoint (e.g. http://otel-collector:4318); empty: no tracing",
        str,
    ),
    Option(
        "log_format",
        "ENTITLEMENTS_LOG_FORMAT",
        "text",
        "text (one line, key=value extras) or json (one object per line, with request_id)",
        choice("text", "json"),
    ),
    Option(
        "source",
        "ENTITLEMENTS_SOURCE",
        "catalog",
        "source of truth: catalog (the catalog file) or lago (Lago's API and webhooks)",
        choice("catalog", "lago"),
    ),
    Option(
        "roles",
        "ENTITLEMENTS_ROLES",
        "reader,syncer",
        "with source=lago: reader (gRPC checks) and/or syncer (webhooks, queue workers, reconciliation)",
        roles,
    ),
    Option(
        "http_address",
        "ENTITLEMENTS_HTTP_ADDRESS",
        "127.0.0.1:8080",
        "HTTP listen address: /healthz, /readyz, /metrics; OFREP (readers); POST /webhooks/lago (syncers)",
        tcp_address,
    ),
    Option("lago_api_url", "ENTITLEMENTS_LAGO_API_URL", "https://api.getlago.com", "Lago's URL (API under /api/v1)"),
    Option(
        "lago_api_key",
        "ENTITLEMENTS_LAGO_API_KEY",
        "",
        "Lago API key (or ENTITLEMENTS_LAGO_API_KEY_FILE with the path of a mounted secret)",
        secret=True,
    ),
    Option(
        "lago_hmac_key",
        "ENTITLEMENTS_LAGO_HMAC_KEY",
        "",
        "the organization's HMAC signature token, for hmac-signed webhooks (or ..._FILE); not the API key",
        secret=True,
    ),
    Option(
        "lago_jwt_issuer",
        "ENTITLEMENTS_LAGO_JWT_ISSUER",
        "",
        "if set, the `iss` that jwt-signed webhooks must carry (Lago's LAGO_API_URL)",
    ),
    Option(
        "lago_rate_limit",
        "ENTITLEMENTS_LAGO_RATE_LIMIT",
        "50",
        "most Lago requests per second from this process (Lago Cloud allows 50)",
        positive_float,
    ),
    Option(
        "lago_timeout_seconds", "ENTITLEMENTS_LAGO_TIMEOUT_SECONDS", "10", "timeout of one Lago request", positive_float
    ),
    Option(
        "lago_max_retries",
        "ENTITLEMENTS_LAGO_MAX_RETRIES",
        "5",
        "retries of a failed Lago request (5xx, timeouts, 429) before giving up",
        positive_int,
    ),
    Option(
        "webhook_max_body_bytes",
        "ENTITLEMENTS_WEBHOOK_MAX_BODY_BYTES",
        "1048576",
        "largest webhook body accepted (larger: 413)",
        positive_int,
    ),
    Option(
        "reconcile_interval_seconds",
        "ENTITLEMENTS_RECONCILE_INTERVAL_SECONDS",
        "3600",
        "how often the syncer compares the whole store with Lago and repairs drift",
        positive_float,
    ),
    Option(
        "queue_claim_idle_seconds",
        "ENTITLEMENTS_QUEUE_CLAIM_IDLE_SECONDS",
        "30",
        "a queued event unacknowledged this long (its syncer died) is taken over by another",
        positive_float,
    ),
    Option(
        "sync_concurrency",
        "ENTITLEMENTS_SYNC_CONCURRENCY",
        "8",
        "Lago requests in flight during a full sync (the rate limit still applies)",
        positive_int,
    ),
)


@dataclass(frozen=True, slots=True)
class Settings:
    grpc_address: str
    store: str
    redis_url: str
    redis_sentinels: str
    redis_sentinel_master: str
    redis_cluster_nodes: str
    redis_key_prefix: str
    redis_timeout_seconds: float
    l1_max_entries: int
    catalog_path: Path
    catalog_poll_seconds: float
    max_batch_size: int
    max_request_bytes: int
    max_watch_subjects: int
    tls_cert_file: str
    tls_key_file: str
    tls_client_ca_file: str
    http_tls_cert_file: str
    http_tls_key_file: str
    http_tls_client_ca_file: str
    max_watch_streams: int
    grpc_threads: int
    staleness_budget_seconds: float
    failure_policy: str
    failure_policy_features: str
    openfeature_keepalive_seconds: float
    shutdown_grace_seconds: float
    log_level: str
    otel_endpoint: str
    log_format: str
    source: str
    roles: frozenset[str]
    http_address: str
    lago_api_url: str
    lago_api_key: str = field(repr=False)
    lago_hmac_key: str = field(repr=False)
    lago_jwt_issuer: str
    lago_rate_limit: float
    lago_timeout_seconds: float
    lago_max_retries: int
    webhook_max_body_bytes: int
    reconcile_interval_seconds: float
    queue_claim_idle_seconds: float
    sync_concurrency: int


def load_settings(
    overrides: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build Settings from flags (`overrides`, keyed by field), the environment and defaults."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for option in OPTIONS:
        flag_value = None if option.secret else (overrides or {}).get(option.field)
        if flag_value is not None:
            raw, origin = flag_value, option.flag
        elif option.secret and f"{option.env}_FILE" in env:
            raw, origin = read_secret(env[f"{option.env}_FILE"], f"{option.env}_FILE"), f"{option.env}_FILE"
        elif option.env in env:
            raw, origin = env[option.env], option.env
        else:
            raw, origin = option.default, f"default of {option.env}"
        try:
            values[option.field] = option.parse(raw)
        except ValueError as exc:
            shown = "<secret>" if option.secret else repr(raw)
            raise ConfigError(f"{origin}={shown}: {exc}") from None
    settings = Settings(**values)
    _check_combination(settings)
    return settings


def _check_tls(settings: Settings) -> None:
    tls_files("gRPC", settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)
    tls_files("HTTP", settings.http_tls_cert_file, settings.http_tls_key_file, settings.http_tls_client_ca_file)
    if settings.tls_cert_file and settings.grpc_address.startswith("unix:"):
        raise ConfigError("TLS on a unix socket is not supported: the socket's file permissions protect it")


def _check_combination(settings: Settings) -> None:
    _check_tls(settings)
    if settings.redis_sentinels and settings.redis_cluster_nodes:
        raise ConfigError("set one of ENTITLEMENTS_REDIS_SENTINELS and ENTITLEMENTS_REDIS_CLUSTER_NODES, not both")
    if settings.source != "lago":
        return
    if "syncer" in settings.roles and not settings.lago_api_key:
        raise ConfigError("ENTITLEMENTS_LAGO_API_KEY (or ENTITLEMENTS_LAGO_API_KEY_FILE) is required for the syncer")
    if settings.store == "memory" and settings.roles != {"reader", "syncer"}:
        raise ConfigError(
            "ENTITLEMENTS_STORE=memory keeps data in one process: it needs ENTITLEMENTS_ROLES=reader,syncer"
        )
