"""The one place our errors become wire codes: gRPC status codes (our API and flagd's), and HTTP statuses
(OFREP, the webhook intake). Each protocol's servers call `grpc_status` or `http_status`; none keeps a
table of its own.

Unknown exceptions become INTERNAL (500) with a request id that is also logged; library text never
reaches a client.
"""

from __future__ import annotations

import logging
import uuid

import grpc

from entitlements_sidecar import logs
from entitlements_sidecar.domain.errors import (
    CatalogError,
    ConfigError,
    DeadlineError,
    EntitlementsError,
    FlagError,
    FlagErrorCode,
    InvalidArgumentError,
    NotReadyError,
    SourceRejectedError,
    SourceUnavailableError,
    StoreUnavailableError,
    TooLargeError,
    UnauthenticatedError,
)

log = logging.getLogger(__name__)

# (error, gRPC code, HTTP status), most specific first. HTTP 503 tells a webhook sender to retry, which is
# what every "cannot now" error means there; a refusal by Lago (SourceRejectedError) is also 503 on HTTP,
# so Lago keeps the delivery, but FAILED_PRECONDITION on gRPC: a client retrying will not fix a bad key.
TABLE: tuple[tuple[type[EntitlementsError], grpc.StatusCode, int], ...] = (
    (InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT, 400),
    (UnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED, 401),
    (TooLargeError, grpc.StatusCode.RESOURCE_EXHAUSTED, 413),
    (StoreUnavailableError, grpc.StatusCode.UNAVAILABLE, 503),
    (SourceUnavailableError, grpc.StatusCode.UNAVAILABLE, 503),
    (NotReadyError, grpc.StatusCode.UNAVAILABLE, 503),
    (SourceRejectedError, grpc.StatusCode.FAILED_PRECONDITION, 503),
    (DeadlineError, grpc.StatusCode.DEADLINE_EXCEEDED, 504),
    (CatalogError, grpc.StatusCode.FAILED_PRECONDITION, 500),
    (ConfigError, grpc.StatusCode.FAILED_PRECONDITION, 500),
)

# flagd's own mapping (flag_evaluator.go errFormat), which its providers read back. It has no code for
# a missing targeting key or a bad context: FAILED_PRECONDITION, which providers report as a general
# error carrying our message (which starts with the OpenFeature error code).
FLAG_GRPC: dict[FlagErrorCode, grpc.StatusCode] = {
    FlagErrorCode.FLAG_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    FlagErrorCode.TYPE_MISMATCH: grpc.StatusCode.INVALID_ARGUMENT,
    FlagErrorCode.PARSE_ERROR: grpc.StatusCode.DATA_LOSS,
    FlagErrorCode.TARGETING_KEY_MISSING: grpc.StatusCode.FAILED_PRECONDITION,
    FlagErrorCode.INVALID_CONTEXT: grpc.StatusCode.FAILED_PRECONDITION,
}
# OFREP: 404 for a flag it does not know, 400 (with the OpenFeature code in the body) for the others.
FLAG_HTTP: dict[FlagErrorCode, int] = {
    code: 404 if code is FlagErrorCode.FLAG_NOT_FOUND else 400 for code in FlagErrorCode
}


def grpc_status(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, FlagError):
        return FLAG_GRPC[exc.code], f"{exc.code.value}: {exc.message}"
    for error_type, code, _ in TABLE:
        if isinstance(exc, error_type):
            return code, str(exc)
    return grpc.StatusCode.INTERNAL, _internal(exc)


def http_status(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, FlagError):
        return FLAG_HTTP[exc.code], exc.message
    for error_type, _, status in TABLE:
        if isinstance(exc, error_type):
            return status, str(exc)
    return 500, _internal(exc)


def _internal(exc: BaseException) -> str:
    request_id = logs.request_id.get() or uuid.uuid4().hex[:16]
    log.error("unhandled error, request_id=%s", request_id, exc_info=exc)
    return f"internal error (request_id={request_id})"
