"""The one table from our errors to gRPC status codes.

Unknown exceptions become INTERNAL with a request id that is also logged; library text never
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
    FlagError,
    FlagErrorCode,
    InvalidArgumentError,
    NotReadyError,
    SourceUnavailableError,
    StoreUnavailableError,
)

log = logging.getLogger(__name__)

STATUS_TABLE: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (StoreUnavailableError, grpc.StatusCode.UNAVAILABLE),
    (SourceUnavailableError, grpc.StatusCode.UNAVAILABLE),
    (NotReadyError, grpc.StatusCode.UNAVAILABLE),
    (DeadlineError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (CatalogError, grpc.StatusCode.FAILED_PRECONDITION),
    (ConfigError, grpc.StatusCode.FAILED_PRECONDITION),
)


# flagd's own mapping (flag_evaluator.go errFormat), which its providers read back. It has no code for
# a missing targeting key or a bad context: FAILED_PRECONDITION, which providers report as a general
# error carrying our message (which starts with the OpenFeature error code).
FLAG_STATUS_TABLE: dict[FlagErrorCode, grpc.StatusCode] = {
    FlagErrorCode.FLAG_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    FlagErrorCode.TYPE_MISMATCH: grpc.StatusCode.INVALID_ARGUMENT,
    FlagErrorCode.PARSE_ERROR: grpc.StatusCode.DATA_LOSS,
    FlagErrorCode.TARGETING_KEY_MISSING: grpc.StatusCode.FAILED_PRECONDITION,
    FlagErrorCode.INVALID_CONTEXT: grpc.StatusCode.FAILED_PRECONDITION,
}


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, FlagError):
        return FLAG_STATUS_TABLE[exc.code], f"{exc.code.value}: {exc.message}"
    for error_type, code in STATUS_TABLE:
        if isinstance(exc, error_type):
            return code, str(exc)
    request_id = logs.request_id.get() or uuid.uuid4().hex[:16]
    log.error("unhandled error, request_id=%s", request_id, exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error (request_id={request_id})"
