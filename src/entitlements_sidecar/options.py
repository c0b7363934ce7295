"""What an option is, and how option values are parsed and checked (settings.py declares them,
config.py reads them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from entitlements_sidecar.domain.errors import ConfigError
from entitlements_sidecar.domain.failure_policy import FailurePolicies, FailurePolicy

OPTION = "option"  # the key of a settings field's metadata that holds its OptionSpec


@dataclass(frozen=True, slots=True)
class OptionSpec:
    default: str
    help: str
    parse: Callable[[str], Any] = str
    secret: bool = False  # no flag (flags show in `ps`), never logged; also read from `<env>_FILE`
    from_file: bool = False  # may hold a password: also read from `<env>_FILE`, never shown in errors


@dataclass(frozen=True, slots=True)
class Option:
    """One option as the environment and the command line see it. `field` is its flat name (the group's
    prefix and the field's name: `redis_url`), the flag's destination; `group` and `attr` place it."""

    field: str
    group: str
    attr: str
    default: str
    help: str
    parse: Callable[[str], Any]
    secret: bool
    from_file: bool

    @classmethod
    def of(cls, prefix: str, group: str, attr: str, spec: OptionSpec) -> Option:
        return cls(prefix + attr, group, attr, spec.default, spec.help, spec.parse, spec.secret, spec.from_file)

    @property
    def env(self) -> str:
        return "ENTITLEMENTS_" + self.field.upper()

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


def choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return text

    return parse


def roles(text: str) -> frozenset[str]:
    """Empty: not set (source=lago then plays both roles)."""
    roles = frozenset(r.strip() for r in text.split(",") if r.strip())
    if roles - {"reader", "syncer"} or (text.strip() and not roles):
        raise ValueError("a comma-separated list of reader and syncer")
    return roles


def share(text: str) -> float:
    """A fraction in (0, 1]."""
    value = float(text)
    if not 0 < value <= 1:
        raise ValueError("must be more than 0 and at most 1")
    return value


def optional_path(text: str) -> Path | None:
    return Path(text) if text else None


def switch(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def tcp_address(text: str) -> str:
    if text.startswith("unix:"):
        raise ValueError("expected host:port")
    return address(text)


def address(text: str) -> str:
    if text.startswith("unix:"):
        if not text.removeprefix("unix:").lstrip("/"):
            raise ValueError("unix socket address needs a path, e.g. unix:/run/entitlements.sock")
        return text
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("expected host:port or unix:/path")
    return text


def redis_url(text: str) -> str:
    """A Redis URL redis-py accepts, checked here so a typo is a clear error, not a traceback later.
    The messages never repeat the URL: it may hold a password."""
    parts = urlsplit(text)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("expected redis://, rediss:// or unix://")
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError("unix:// needs a socket path")
        return text
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port must be a number from 1 to 65535") from None
    if not parts.hostname:
        raise ValueError("the URL needs a host")
    if port == 0:
        raise ValueError("the port must be a number from 1 to 65535")
    database = parts.path.lstrip("/")
    if database and not database.isdigit():
        raise ValueError("the path must be a database number, e.g. /0")
    return text


def failure_policy(text: str) -> FailurePolicy:
    return FailurePolicy.parse(text)  # raises ValueError naming the problem


def failure_policies_by_feature(text: str) -> dict[str, FailurePolicy]:
    return dict(FailurePolicies.parse("fail_closed", text).by_feature)


def host_ports(text: str) -> tuple[tuple[str, int], ...]:
    found = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"{item!r}: expected host:port")
        found.append((host, int(port)))
    return tuple(found)


def tls_files(port: str, cert: str, key: str, client_ca: str) -> None:
    """A port's TLS settings make sense together and name readable files (ConfigError otherwise)."""
    if bool(cert) != bool(key):
        raise ConfigError(f"{port} TLS needs both a certificate and a key file")
    if client_ca and not cert:
        raise ConfigError(f"{port} client certificates (mutual TLS) need TLS: set its certificate and key files")
    for path in (cert, key, client_ca):
        if path and not Path(path).is_file():
            raise ConfigError(f"{port} TLS: {path} is not a readable file")


def read_secret(path: str, name: str) -> str:
    """A secret mounted as a file (`<env>_FILE`); surrounding whitespace, like a trailing newline, dropped."""
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None
