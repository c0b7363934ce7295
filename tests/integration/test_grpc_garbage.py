"""Bytes that are not the method's message, to every method that takes one: INVALID_ARGUMENT naming
the expected message, no traceback, and a quiet log however often it happens."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from tests.support.processes import Sidecar

pytestmark = pytest.mark.integration

GARBAGE = b"\xff\xff\xff\xff\x0f garbage"  # an invalid varint tag: no protobuf message parses it

METHODS = [
    "/entitlements.v1.EntitlementService/CheckEntitlement",
    "/entitlements.v1.EntitlementService/CheckEntitlements",
    "/entitlements.v1.EntitlementService/GetEntitlements",
    "/flagd.evaluation.v1.Service/ResolveBoolean",
    "/flagd.evaluation.v1.Service/ResolveAll",
    "/flagd.evaluation.v2.Service/ResolveString",
    "/flagd.evaluation.v2.Service/ResolveObject",
    "/grpc.health.v1.Health/Check",
]
STREAMS = [
    "/entitlements.v1.EntitlementService/WatchEntitlements",
    "/flagd.evaluation.v2.Service/EventStream",
    "/grpc.health.v1.Health/Watch",
]


def test_garbage_requests_are_invalid_argument_without_tracebacks(memory_sidecar: Sidecar) -> None:
    channel = memory_sidecar.channel
    for _ in range(20):
        for method in METHODS:
            call: Any = channel.unary_unary(method)  # no serializers: raw bytes
            with pytest.raises(grpc.RpcError) as caught:
                call(GARBAGE, timeout=5)
            assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT, (method, caught.value.details())
            assert "not a valid" in (caught.value.details() or ""), method
        for method in STREAMS:
            stream: Any = channel.unary_stream(method)
            stream = stream(GARBAGE, timeout=5)
            with pytest.raises(grpc.RpcError) as caught:
                next(stream)
            assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT, (method, caught.value.details())
    log = memory_sidecar.log()
    assert "Traceback" not in log and "Exception deserializing" not in log, log[-2000:]
    assert log.count("undecodable gRPC request refused") <= 1
