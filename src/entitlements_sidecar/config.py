"""Configuration: the only module that reads the environment.

Every option (settings.py) has an `ENTITLEMENTS_*` variable and a matching `serve` flag; a flag wins
over the variable, which wins over the default. The README's option table is checked against OPTIONS.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from entitlements_sidecar.domain.errors import ConfigError
from entitlements_sidecar.options import OPTION, Option, read_secret, tls_files
from entitlements_sidecar.settings import Settings

__all__ = ["OPTIONS", "Settings", "load_settings"]

GROUPS: dict[str, Any] = typing.get_type_hints(Settings)  # group name -> its settings class
OPTIONS: tuple[Option, ...] = tuple(
    Option.of(kind.PREFIX, name, item.name, item.metadata[OPTION])
    for name, kind in GROUPS.items()
    for item in dataclasses.fields(kind)
)


def load_settings(
    overrides: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
    serving: bool = True,
    memory_limit: int | None = None,
) -> Settings:
    """Build Settings from flags (`overrides`, keyed by an option's flat name), the environment and
    defaults. `serving`: for `serve` and `sync`, which need a source of truth (client commands do not).
    `memory_limit`: the container's, in bytes (read from the cgroup when not given)."""
    env = os.environ if environ is None else environ
    values: dict[str, dict[str, Any]] = {name: {} for name in GROUPS}
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
            values[option.group][option.attr] = option.parse(raw)
        except ValueError as exc:
            shown = "<secret>" if option.secret or option.from_file else repr(raw)
            raise ConfigError(f"{origin}={shown}: {exc}") from None
    settings = Settings(**{name: GROUPS[name](**fields) for name, fields in values.items()})
    if not settings.lago.proxy_url:
        proxy = environment_proxy(settings.lago.api_url, env)
        settings = replace(settings, lago=replace(settings.lago, proxy_url=proxy))
    if origins["l1_max_bytes"].startswith("default"):
        settings = _l1_within(settings, _container_memory() if memory_limit is None else memory_limit)
    _check_tls(settings)
    if serving:
        settings = _with_source(settings, origins)
    _check_combination(settings)
    return settings


def environment_proxy(url: str, env: Mapping[str, str]) -> str:
    """The proxy the usual variables name for `url` (curl's rules): `https_proxy`/`http_proxy` by its
    scheme (lower case first; an empty one counts as unset), none when `no_proxy` lists its host, a parent
    domain of it, or `*`."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    bypass = env.get("no_proxy") or env.get("NO_PROXY") or ""
    for entry in (e.strip().lower().lstrip(".") for e in bypass.split(",")):
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return ""
    scheme = parts.scheme.lower()
    return env.get(f"{scheme}_proxy") or env.get(f"{scheme.upper()}_PROXY") or ""


def _with_source(settings: Settings, origins: Mapping[str, str]) -> Settings:
    """The source of truth must be chosen on purpose (no demo data by accident), and options that do not
    apply to it are errors rather than silently ignored."""
    mode = settings.mode
    source = mode.source or ("catalog" if mode.catalog_path else "")
    if not source:
        raise ConfigError(
            "no source of truth is configured: set ENTITLEMENTS_SOURCE=lago (Lago's API and webhooks) or "
            "ENTITLEMENTS_CATALOG_PATH=<file> (a catalog file; `make run` uses examples/catalog.yaml)"
        )
    if source == "catalog":
        if mode.catalog_path is None:
            raise ConfigError(f"{origins['source']}=catalog needs ENTITLEMENTS_CATALOG_PATH (or --catalog-path)")
        if mode.meters_path is not None:
            raise ConfigError(f"{origins['meters_path']}: a catalog declares its meters itself (meters:)")
        if mode.roles:
            raise ConfigError(
                f"{origins['roles']}: roles apply to source=lago only (a catalog process loads the file and serves)"
            )
        return replace(settings, mode=replace(mode, source=source))
    if mode.catalog_path is not None:
        raise ConfigError(f"{origins['catalog_path']}: a catalog file applies to source=catalog, not lago")
    return replace(settings, mode=replace(mode, roles=mode.roles or frozenset({"reader", "syncer"})))


_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def _container_memory() -> int | None:
    """The cgroup's memory limit (v2, else v1), or None when there is none."""
    for path in _CGROUP_LIMITS:
        try:
            with open(path) as limit:
                text = limit.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # v1 says "no limit" with a huge number, v2 with "max"
            return int(text)
    return None


def _l1_within(settings: Settings, memory_limit: int | None) -> Settings:
    """The L1's default bound is at most half the container's memory (the rest is the process itself, the
    answer cache and headroom), as Stigg bounds its cache; an explicit setting is taken as given."""
    if memory_limit is None or settings.cache.l1_max_bytes <= memory_limit // 2:
        return settings
    return replace(settings, cache=replace(settings.cache, l1_max_bytes=max(1, memory_limit // 2)))


def _check_tls(settings: Settings) -> None:
    tls, http = settings.tls, settings.http
    tls_files("gRPC", tls.cert_file, tls.key_file, tls.client_ca_file)
    tls_files("HTTP", http.tls_cert_file, http.tls_key_file, http.tls_client_ca_file)
    if tls.cert_file and settings.grpc.address.startswith("unix:"):
        raise ConfigError("TLS on a unix socket is not supported: the socket's file permissions protect it")


def _check_combination(settings: Settings) -> None:
    if settings.redis.sentinels and settings.redis.cluster_nodes:
        raise ConfigError("set one of ENTITLEMENTS_REDIS_SENTINELS and ENTITLEMENTS_REDIS_CLUSTER_NODES, not both")
    mode = settings.mode
    if mode.source != "lago":
        return
    if "syncer" in mode.roles and not settings.lago.api_key:
        raise ConfigError("ENTITLEMENTS_LAGO_API_KEY (or ENTITLEMENTS_LAGO_API_KEY_FILE) is required for the syncer")
    if mode.store == "memory" and mode.roles != {"reader", "syncer"}:
        raise ConfigError(
            "ENTITLEMENTS_STORE=memory keeps data in one process: it needs ENTITLEMENTS_ROLES=reader,syncer"
        )
