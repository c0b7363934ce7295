"""The one exception hierarchy. Adapters translate library errors into these; the transport maps
them to gRPC codes, flagd codes and HTTP statuses in one module (transport/wire.py).

    EntitlementsError
    ├── InvalidArgumentError      a request field is wrong (names the field)
    ├── UnauthenticatedError      a request's credentials are missing or wrong (a webhook signature)
    ├── TooLargeError             a request body is over its limit
    ├── StoreUnavailableError     Redis cannot answer now: try again
    ├── SourceUnavailableError    the source cannot answer now: try again
    ├── SourceRejectedError       the source refused us (Lago 401/403, another 4xx): retrying will not help
    ├── NotReadyError             the map is not known complete: "not found" would be a guess
    ├── DeadlineError             no answer before the caller's deadline
    ├── CatalogError              a catalog file is invalid (names the file and the path in it)
    ├── ConfigError               a setting is invalid (names the variable or flag)
    └── FlagError                 an OpenFeature evaluation without a value (carries OpenFeature's code)
"""

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


class UnauthenticatedError(EntitlementsError):
    """A request's credentials are missing or wrong (an unsigned or wrongly signed webhook)."""


class TooLargeError(EntitlementsError):
    """A request body is larger than its limit."""


class StoreUnavailableError(EntitlementsError):
    """The shared store (Redis) could not be reached or answered with an error."""


class SourceUnavailableError(EntitlementsError):
    """The source of truth (Lago or the catalog file) could not be read now; a later try may work."""


class SourceRejectedError(EntitlementsError):
    """The source refused a request in a way that retrying will not change (Lago answered 401 or 403 to
    our API key, or another 4xx): it lasts until the configuration or the source changes."""


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
