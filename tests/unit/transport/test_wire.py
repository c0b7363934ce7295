"""The one table from the exception tree to gRPC codes, flagd codes and HTTP statuses."""

from __future__ import annotations

import grpc
import pytest

from entitlements_sidecar.domain import errors
from entitlements_sidecar.domain.errors import EntitlementsError, FlagError, FlagErrorCode
from entitlements_sidecar.transport.wire import FLAG_GRPC, FLAG_HTTP, TABLE, grpc_status, http_status


def every_error_kind() -> list[type[EntitlementsError]]:
    found = []
    pending = [EntitlementsError]
    while pending:
        kind = pending.pop()
        for sub in kind.__subclasses__():
            if sub.__module__ == errors.__name__:
                found.append(sub)
                pending.append(sub)
    return found


def test_every_error_of_the_tree_has_a_row() -> None:
    rows = {kind for kind, _, _ in TABLE}
    missing = [k.__name__ for k in every_error_kind() if k is not FlagError and not any(issubclass(k, r) for r in rows)]
    assert not missing
    assert set(FLAG_GRPC) == set(FLAG_HTTP) == set(FlagErrorCode)


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        (errors.InvalidArgumentError("feature_code", "is required"), grpc.StatusCode.INVALID_ARGUMENT, 400),
        (errors.UnauthenticatedError("hmac signature does not match the body"), grpc.StatusCode.UNAUTHENTICATED, 401),
        (errors.TooLargeError("body larger than 10 bytes"), grpc.StatusCode.RESOURCE_EXHAUSTED, 413),
        (errors.StoreUnavailableError("redis error: ConnectionError"), grpc.StatusCode.UNAVAILABLE, 503),
        (errors.SourceUnavailableError("lago down"), grpc.StatusCode.UNAVAILABLE, 503),
        (errors.NotReadyError("being rebuilt"), grpc.StatusCode.UNAVAILABLE, 503),
        # A refused key: gRPC callers should not retry; a webhook sender should (503), so nothing is lost.
        (errors.SourceRejectedError("lago 401"), grpc.StatusCode.FAILED_PRECONDITION, 503),
        (errors.DeadlineError("no answer in time"), grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (errors.ConfigError("ENTITLEMENTS_X: bad"), grpc.StatusCode.FAILED_PRECONDITION, 500),
    ],
)
def test_each_kind_maps_to_its_codes_with_its_own_message(
    error: EntitlementsError, code: grpc.StatusCode, status: int
) -> None:
    assert grpc_status(error) == (code, str(error))
    assert http_status(error) == (status, str(error))


def test_a_lago_error_maps_by_its_kind() -> None:
    from entitlements_sidecar.sources.lago.errors import error_from_response

    assert (
        grpc_status(error_from_response(401, {"code": "unauthorized"}, "/x"))[0] is grpc.StatusCode.FAILED_PRECONDITION
    )
    assert grpc_status(error_from_response(503, {}, "/x"))[0] is grpc.StatusCode.UNAVAILABLE
    assert grpc_status(error_from_response(422, {}, "/x"))[0] is grpc.StatusCode.FAILED_PRECONDITION


def test_flag_errors_carry_the_openfeature_code() -> None:
    missing = FlagError(FlagErrorCode.FLAG_NOT_FOUND, "no flag nope")
    assert grpc_status(missing) == (grpc.StatusCode.NOT_FOUND, "FLAG_NOT_FOUND: no flag nope")
    assert http_status(missing) == (404, "no flag nope")
    assert http_status(FlagError(FlagErrorCode.TYPE_MISMATCH, "x"))[0] == 400


@pytest.mark.parametrize("error", [EntitlementsError("odd"), KeyError("secret internals")])
def test_anything_else_is_internal_with_a_request_id_and_no_library_text(error: Exception) -> None:
    code, message = grpc_status(error)
    status, http_message = http_status(error)
    assert (code, status) == (grpc.StatusCode.INTERNAL, 500)
    for text in (message, http_message):
        assert text.startswith("internal error (request_id=") and "secret" not in text
