"""Configuration: the only module that reads the environment.

Every option has an `ENTITLEMENTS_*` variable and a matching `serve` flag; a flag wins over the
variable, which wins over the default. The README's option table is checked against OPTIONS.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from entitlements_sidecar.domain.errors import ConfigError
from entitlements_sidecar.option_table import OPTIONS
from entitlements_sidecar.options import read_secret, tls_files

__all__ = ["OPTIONS", "Settings", "load_settings"]


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
    catalog_path: Path | None
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
    grpc_reuse_port: bool
    grpc_keepalive_seconds: float
    grpc_keepalive_timeout_seconds: float
    max_streams_per_connection: int
    staleness_budget_seconds: float
    failure_policy: str
    failure_policy_features: str
    deadline_margin_seconds: float
    openfeature_keepalive_seconds: float
    shutdown_grace_seconds: float
    log_level: str
    otel_endpoint: str
    log_format: str
    source: str
    roles: frozenset[str]
    http_address: str
    http_max_signature_bytes: int
    http_header_timeout_seconds: float
    http_body_timeout_seconds: float
    http_idle_timeout_seconds: float
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
    queue_consumer: str
    sync_concurrency: int


def load_settings(
    overrides: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
    serving: bool = True,
) -> Settings:
    """Build Settings from flags (`overrides`, keyed by field), the environment and defaults. `serving`:
    for `serve` and `sync`, which need a source of truth (client commands do not)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for option in OPTIONS:
        flag_value = None if option.secret else (overrides or {}).get(option.field)
        if flag_value is not None:
            raw, origin = flag_value, option.flag
        elif (option.secret or option.from_file) and f"{option.env}_FILE" in env:
            raw, origin = read_secret(env[f"{option.env}_FILE"], f"{option.env}_FILE"), f"{option.env}_FILE"
        elif option.env in env:
            raw, origin = env[option.env], option.env
        else:
            raw, origin = option.default, f"default of {option.env}"
        origins[option.field] = origin
        try:
            values[option.field] = option.parse(raw)
        except ValueError as exc:
            shown = "<secret>" if option.secret or option.from_file else repr(raw)
            raise ConfigError(f"{origin}={shown}: {exc}") from None
    settings = Settings(**values)
    _check_tls(settings)
    if serving:
        settings = _with_source(settings, origins)
    _check_combination(settings)
    return settings


def _with_source(settings: Settings, origins: Mapping[str, str]) -> Settings:
    """The source of truth must be chosen on purpose (no demo data by accident), and options that do not
    apply to it are errors rather than silently ignored."""
    source = settings.source or ("catalog" if settings.catalog_path else "")
    if not source:
        raise ConfigError(
            "no source of truth is configured: set ENTITLEMENTS_SOURCE=lago (Lago's API and webhooks) or "
            "ENTITLEMENTS_CATALOG_PATH=<file> (a catalog file; `make run` uses examples/catalog.yaml)"
        )
    if source == "catalog":
        if settings.catalog_path is None:
            raise ConfigError(f"{origins['source']}=catalog needs ENTITLEMENTS_CATALOG_PATH (or --catalog-path)")
        if settings.roles:
            raise ConfigError(
                f"{origins['roles']}: roles apply to source=lago only (a catalog process loads the file and serves)"
            )
        return replace(settings, source=source)
    if settings.catalog_path is not None:
        raise ConfigError(f"{origins['catalog_path']}: a catalog file applies to source=catalog, not lago")
    return replace(settings, roles=settings.roles or frozenset({"reader", "syncer"}))


def _check_tls(settings: Settings) -> None:
    tls_files("gRPC", settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)
    tls_files("HTTP", settings.http_tls_cert_file, settings.http_tls_key_file, settings.http_tls_client_ca_file)
    if settings.tls_cert_file and settings.grpc_address.startswith("unix:"):
        raise ConfigError("TLS on a unix socket is not supported: the socket's file permissions protect it")


def _check_combination(settings: Settings) -> None:
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
