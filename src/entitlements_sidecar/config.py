"""Configuration: the only module that reads the environment.

Every option has an `ENTITLEMENTS_*` variable and a matching `serve` flag; a flag wins over the
variable, which wins over the default. The README's option table is checked against OPTIONS.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from entitlements_sidecar.domain.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Option:
    field: str
    env: str
    default: str
    help: str
    parse: Callable[[str], Any] = str

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return text

    return parse


def _address(text: str) -> str:
    if text.startswith("unix:"):
        if not text.removeprefix("unix:").lstrip("/"):
            raise ValueError("unix socket address needs a path, e.g. unix:/run/entitlements.sock")
        return text
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("expected host:port or unix:/path")
    return text


OPTIONS: tuple[Option, ...] = (
    Option(
        "grpc_address",
        "ENTITLEMENTS_GRPC_ADDRESS",
        "127.0.0.1:50051",
        "gRPC listen address (host:port, or unix:/path for a unix socket); clients use it as their target",
        _address,
    ),
    Option(
        "store",
        "ENTITLEMENTS_STORE",
        "memory",
        "where the resolved map lives: memory (embedded, one process) or redis (shared)",
        _choice("memory", "redis"),
    ),
    Option("redis_url", "ENTITLEMENTS_REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL when store=redis"),
    Option("redis_key_prefix", "ENTITLEMENTS_REDIS_KEY_PREFIX", "ent:", "prefix of every Redis key and channel"),
    Option(
        "redis_timeout_seconds",
        "ENTITLEMENTS_REDIS_TIMEOUT_SECONDS",
        "2.0",
        "Redis connect and command timeout",
        _positive_float,
    ),
    Option(
        "l1_max_entries",
        "ENTITLEMENTS_L1_MAX_ENTRIES",
        "100000",
        "in-process cache size in entries (subscriptions + customers); 0 disables it",
        _positive_int,
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
        _positive_float,
    ),
    Option(
        "max_batch_size",
        "ENTITLEMENTS_MAX_BATCH_SIZE",
        "1000",
        "most checks accepted in one CheckEntitlements call",
        _positive_int,
    ),
    Option(
        "max_watch_subjects",
        "ENTITLEMENTS_MAX_WATCH_SUBJECTS",
        "100",
        "most subjects in one WatchEntitlements call",
        _positive_int,
    ),
    Option(
        "shutdown_grace_seconds",
        "ENTITLEMENTS_SHUTDOWN_GRACE_SECONDS",
        "5.0",
        "on SIGTERM, how long in-flight calls may take to finish (Watch streams end at once)",
        _positive_float,
    ),
    Option(
        "log_level",
        "ENTITLEMENTS_LOG_LEVEL",
        "info",
        "debug, info, warning or error",
        _choice("debug", "info", "warning", "error"),
    ),
)


@dataclass(frozen=True, slots=True)
class Settings:
    grpc_address: str
    store: str
    redis_url: str
    redis_key_prefix: str
    redis_timeout_seconds: float
    l1_max_entries: int
    catalog_path: Path
    catalog_poll_seconds: float
    max_batch_size: int
    max_watch_subjects: int
    shutdown_grace_seconds: float
    log_level: str


def load_settings(
    overrides: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build Settings from flags (`overrides`, keyed by field), the environment and defaults."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for option in OPTIONS:
        flag_value = (overrides or {}).get(option.field)
        if flag_value is not None:
            raw, origin = flag_value, option.flag
        elif option.env in env:
            raw, origin = env[option.env], option.env
        else:
            raw, origin = option.default, f"default of {option.env}"
        try:
            values[option.field] = option.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{origin}={raw!r}: {exc}") from None
    return Settings(**values)
