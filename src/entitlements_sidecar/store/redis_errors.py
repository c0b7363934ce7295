"""The one translation of a redis-py failure into StoreUnavailableError, counted for /metrics
(`entitlements_redis_errors`): every Redis adapter raises through `unavailable`."""

from __future__ import annotations

import threading

from entitlements_sidecar.domain.errors import StoreUnavailableError

_lock = threading.Lock()  # adapters fail on the event loop and on the L1's gRPC threads alike
_failures = 0


def unavailable(exc: BaseException, what: str = "redis error") -> StoreUnavailableError:
    """The error to raise for `exc`. Never the library's text, which may hold keys; its type is enough
    to diagnose from logs."""
    global _failures
    with _lock:
        _failures += 1
    return StoreUnavailableError(f"{what}: {type(exc).__name__}")


def redis_failures() -> int:
    """Redis commands that failed or timed out since start, in every adapter of this process."""
    return _failures
