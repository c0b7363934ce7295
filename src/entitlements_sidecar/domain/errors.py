"""The one exception hierarchy. Adapters translate library errors into these; the transport maps
them to status codes in one table (transport/status.py)."""

from __future__ import annotations

import enum


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

    # Every Redis adapter raises this on any Redis failure, so counting here counts them all (/metrics).
    raised = 0

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        StoreUnavailableError.raised += 1


class SourceUnavailableError(EntitlementsError):
    """The source of truth (Lago or the catalog file) could not be read."""


class NotReadyError(EntitlementsError):
    """The map is not known to be complete (no full load yet, or Redis lost it and it is being rebuilt):
    a subject it does not hold may exist."""


class DeadlineError(EntitlementsError):
    """The store or the source would not answer before the caller's deadline (less a margin)."""


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


class FlagErrorCode(enum.Enum):
    """OpenFeature's error codes, the ones the flag mapping can produce (domain/flags.py)."""

    FLAG_NOT_FOUND = "FLAG_NOT_FOUND"
    TYPE_MISMATCH = "TYPE_MISMATCH"
    TARGETING_KEY_MISSING = "TARGETING_KEY_MISSING"
    INVALID_CONTEXT = "INVALID_CONTEXT"
    PARSE_ERROR = "PARSE_ERROR"


class FlagError(EntitlementsError):
    """An OpenFeature evaluation that cannot give a value; each protocol maps `code` to its own status."""

    def __init__(self, code: FlagErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
