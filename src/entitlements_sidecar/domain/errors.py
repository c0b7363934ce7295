"""The one exception hierarchy. Adapters translate library errors into these; the transport maps
them to status codes in one table (transport/status.py)."""

from __future__ import annotations


class EntitlementsError(Exception):
    """Base of every error the sidecar raises on purpose."""


class InvalidArgumentError(EntitlementsError):
    """A request field is missing or wrong. `field` names it, as the client spelled it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class StoreUnavailableError(EntitlementsError):
    """The shared store (Redis) could not be reached or answered with an error."""


class SourceUnavailableError(EntitlementsError):
    """The source of truth (Lago or the catalog file) could not be read."""


class NotReadyError(EntitlementsError):
    """The sidecar has not finished its first load yet."""


class CatalogError(EntitlementsError):
    """A catalog file is invalid. The message names the file, the path in it and the problem."""

    def __init__(self, file: str, path: str, problem: str) -> None:
        where = f"{file}: {path}" if path else file
        super().__init__(f"{where}: {problem}")
        self.file = file
        self.path = path
        self.problem = problem


class ConfigError(EntitlementsError):
    """A configuration value is invalid; the message names the variable or flag."""
