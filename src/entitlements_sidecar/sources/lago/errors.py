"""Lago's error bodies (`{"status", "error", "code", "error_details"}`) as typed errors.

Each is also one of the domain's kinds, which decides what callers do: SourceUnavailableError (5xx,
timeouts, 429, a wrong row) is tried again; SourceRejectedError (401/403, any other 4xx) is not: a bad
API key keeps the syncer's queue pending and says so in readiness until it is fixed.
"""

from __future__ import annotations

from typing import Any

from entitlements_sidecar.domain.errors import EntitlementsError, SourceRejectedError, SourceUnavailableError


class LagoError(EntitlementsError):
    """Lago answered with an error or could not be reached."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class LagoNotFoundError(LagoError, SourceRejectedError):
    """404: `subscription_not_found`, `plan_not_found`, ..."""


class LagoAuthError(LagoError, SourceRejectedError):
    """401 or 403: the API key is wrong, expired or lacks a permission."""


class LagoContractError(LagoError, SourceUnavailableError):
    """Lago answered something other than what was asked (another subscription, another status).
    Nothing of such an answer is written anywhere; callers skip it or fall back."""


class LagoRequestError(LagoError, SourceRejectedError):
    """Another 4xx: Lago refused this one request (it would refuse it again)."""


class LagoRateLimitedError(LagoError, SourceUnavailableError):
    """429 after every retry."""


class LagoUnavailableError(LagoError, SourceUnavailableError):
    """5xx, timeouts and connection errors after every retry."""


def error_from_response(status: int, body: Any, path: str) -> LagoError:
    code = body.get("code") if isinstance(body, dict) else None
    text = body.get("error") if isinstance(body, dict) else None
    message = f"lago {status} on {path}" + (f": {code}" if code else f": {text}" if text else "")
    if status == 404:
        return LagoNotFoundError(message, status, code)
    if status in (401, 403):
        return LagoAuthError(message, status, code)
    if status == 429:
        return LagoRateLimitedError(message, status, code)
    if status >= 500:
        return LagoUnavailableError(message, status, code)
    return LagoRequestError(message, status, code)
