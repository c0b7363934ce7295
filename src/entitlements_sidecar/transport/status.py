"""The one table from our errors to gRPC status codes.

Unknown exceptions become INTERNAL with a request id that is also logged; library text never
reaches a client.
"""

from __future__ import annotations

import logging
import uuid

import grpc

from entitlements_sidecar.domain.errors import (
    CatalogError,
    ConfigError,
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
    (CatalogError, grpc.StatusCode.FAILED_PRECONDITION),
    (ConfigError, grpc.StatusCode.FAILED_PRECONDITION),
)


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    for error_type, code in STATUS_TABLE:
        if isinstance(exc, error_type):
            return code, str(exc)
    request_id = uuid.uuid4().hex[:16]
    log.error("unhandled error, request_id=%s", request_id, exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error (request_id={request_id})"
