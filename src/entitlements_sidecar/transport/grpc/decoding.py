"""Requests that are not the method's message are the caller's mistake: INVALID_ARGUMENT, one
throttled log line, no traceback.

grpcio answers a request its deserializer cannot read with INTERNAL ("Exception deserializing
request!") and logs a traceback for each. Wrapped here, the deserializer never raises: it hands
the behaviour a marker, and the behaviour aborts with INVALID_ARGUMENT naming the message type.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from entitlements_sidecar.logs import Throttled

log = logging.getLogger(__name__)
_throttled = Throttled(log)

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]  # generic only in the type stubs


@dataclass(frozen=True, slots=True)
class _Undecodable:
    error: str


def decoding_checked(handler: Handler) -> Handler:
    """The same method, with a deserializer that never raises. Methods that take a request stream
    (reflection) are returned as they are."""
    decode = handler.request_deserializer
    if handler.request_streaming or decode is None:
        return handler
    message = getattr(getattr(decode, "__self__", None), "DESCRIPTOR", None)
    expected = message.full_name if message is not None else "request"

    def safe_decode(raw: bytes) -> Any:
        try:
            return decode(raw)
        except Exception as exc:  # protobuf's DecodeError, or a raw-bytes parser's own error
            return _Undecodable(str(exc) or type(exc).__name__)

    def refuse(request: Any, context: grpc.ServicerContext) -> None:
        if isinstance(request, _Undecodable):
            _throttled.log(logging.INFO, "grpc-undecodable", "undecodable gRPC request refused", expected=expected)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"request: not a valid {expected} message")

    if handler.unary_unary is not None:
        unary = handler.unary_unary

        def unary_behaviour(request: Any, context: grpc.ServicerContext) -> Any:
            refuse(request, context)
            return unary(request, context)

        return grpc.unary_unary_rpc_method_handler(unary_behaviour, safe_decode, handler.response_serializer)
    assert handler.unary_stream is not None
    stream = handler.unary_stream

    def stream_behaviour(request: Any, context: grpc.ServicerContext) -> Any:
        refuse(request, context)
        return stream(request, context)

    return grpc.unary_stream_rpc_method_handler(stream_behaviour, safe_decode, handler.response_serializer)


def all_checked(methods: Mapping[str, Handler]) -> dict[str, Handler]:
    return {name: decoding_checked(handler) for name, handler in methods.items()}


class HandlerCollector:
    """Stands in for a server to a generated `add_*Servicer_to_server`, keeping its handlers so they
    can be wrapped before the real server gets them."""

    def __init__(self) -> None:
        self.services: dict[str, dict[str, Handler]] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass  # the same handlers also arrive by name below

    def add_registered_method_handlers(self, service: str, methods: Mapping[str, Handler]) -> None:
        self.services[service] = dict(methods)
