"""flagd's evaluation protocol (v1 and v2) over gRPC, answered from the resolved map.

OpenFeature's flagd providers in RPC mode (Python, Java, Node, .NET: v2; the browser: v1
ResolveAll) work against the sidecar unchanged: point them at its gRPC port. The flag mapping is
domain/flags.py; errors use flagd's status codes (transport/wire.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from types import ModuleType
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2

from entitlements_sidecar import tracing
from entitlements_sidecar.domain.flags import FlagResult, FlagType, evaluate, evaluate_all, subject_from_context
from entitlements_sidecar.domain.ports import FeatureCatalog
from entitlements_sidecar.domain.service import EntitlementReader, EntitlementView
from entitlements_sidecar.gen.flagd.evaluation.v1 import evaluation_pb2 as v1
from entitlements_sidecar.gen.flagd.evaluation.v2 import evaluation_pb2 as v2
from entitlements_sidecar.transport.grpc.loop_bridge import AbortContext, LoopBridge
from entitlements_sidecar.transport.grpc.routing import StreamSlots
from entitlements_sidecar.transport.openfeature.flag_events import FlagChangeFeed
from entitlements_sidecar.transport.wire import grpc_status

_RESOLVES = {
    "ResolveBoolean": FlagType.BOOLEAN,
    "ResolveString": FlagType.STRING,
    "ResolveInt": FlagType.INTEGER,
    "ResolveFloat": FlagType.FLOAT,
    "ResolveObject": FlagType.OBJECT,
}


class FlagdService:
    def __init__(
        self,
        service: EntitlementReader,  # bounded by the call's deadline
        feed: FlagChangeFeed,
        bridge: LoopBridge,
        slots: StreamSlots,
        catalog: FeatureCatalog,
        keepalive_seconds: float = 20.0,
    ) -> None:
        self._service = service
        self._catalog = catalog
        self._feed = feed
        self._bridge = bridge
        self._slots = slots
        self._keepalive = keepalive_seconds

    def handlers(self) -> dict[str, dict[str, grpc.RpcMethodHandler[Any, Any]]]:
        """Method handlers by full service name."""
        services = {}
        for module in (v1, v2):
            methods: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
            for method, flag_type in _RESOLVES.items():
                methods[method] = grpc.unary_unary_rpc_method_handler(
                    self._resolve_behaviour(module, method, flag_type),
                    getattr(module, f"{method}Request").FromString,
                    getattr(module, f"{method}Response").SerializeToString,
                )
            if module is v1:
                methods["ResolveAll"] = grpc.unary_unary_rpc_method_handler(
                    lambda request, context: self._bridge.call(self._resolve_all, request, context),
                    v1.ResolveAllRequest.FromString,
                    v1.ResolveAllResponse.SerializeToString,
                )
            methods["EventStream"] = grpc.unary_stream_rpc_method_handler(
                self._stream_behaviour(module),
                module.EventStreamRequest.FromString,
                module.EventStreamResponse.SerializeToString,
            )
            services[module.DESCRIPTOR.services_by_name["Service"].full_name] = methods
        return services

    def close(self) -> None:
        self._feed.close()

    def _resolve_behaviour(self, module: ModuleType, method: str, flag_type: FlagType) -> Callable[..., Any]:
        response_type = getattr(module, f"{method}Response")

        async def resolve(request: Any, context: AbortContext) -> Any:
            try:
                with tracing.span(f"flagd {method}", flag=request.flag_key):
                    view = await self._view(request.context)
                    result = evaluate(view, request.flag_key, flag_type)
            except Exception as exc:
                await context.abort(*grpc_status(exc))
            if result.value is None and module is v1:
                # v1 cannot say "no value"; flagd answers a disabled flag with NOT_FOUND.
                await context.abort(
                    grpc.StatusCode.NOT_FOUND,
                    f"FLAG_NOT_FOUND: flag {result.key!r} has no value here ({result.variant})",
                )
            return _response(response_type, result)

        return lambda request, context: self._bridge.call(resolve, request, context)

    async def _resolve_all(self, request: Any, context: AbortContext) -> Any:
        try:
            view = await self._view(request.context)
            catalog = await self._catalog.features()
        except Exception as exc:
            await context.abort(*grpc_status(exc))
        response = v1.ResolveAllResponse()
        for key, result in evaluate_all(view, catalog).items():
            if result.value is None:
                continue  # what v1 answers NOT_FOUND singly
            flag = response.flags[key]
            flag.reason, flag.variant = result.reason, result.variant
            _set_any(flag, result.value)
        return response

    async def _view(self, context: struct_pb2.Struct) -> EntitlementView:
        subject = subject_from_context(json_format.MessageToDict(context))
        view = await self._service.get(subject)
        self._feed.remember(view)
        return view

    def _stream_behaviour(self, module: ModuleType) -> Callable[..., Any]:
        def event_stream(request: Any, context: grpc.ServicerContext) -> Any:
            with self._slots.hold(context):
                yield from self._bridge.stream(self._events, module, context)

        return event_stream

    async def _events(self, module: ModuleType, context: AbortContext) -> AsyncIterator[Any]:
        queue = self._feed.subscribe()
        try:
            yield module.EventStreamResponse(type="provider_ready")
            while True:
                try:
                    notice = await asyncio.wait_for(queue.get(), self._keepalive)
                except TimeoutError:
                    yield module.EventStreamResponse(type="keep_alive")
                    continue
                if notice is None:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "server shutting down; reconnect")
                    return
                data = struct_pb2.Struct()
                data.update({"flags": {key: {"type": "update"} for key in sorted(notice)}})
                yield module.EventStreamResponse(type="configuration_change", data=data)
        finally:
            self._feed.unsubscribe(queue)


def _response(response_type: Any, result: FlagResult) -> Any:
    response = response_type(reason=result.reason)
    if result.value is None:
        return response  # no value and no variant: flagd's providers then return the caller's default
    response.variant = result.variant
    if isinstance(result.value, dict):
        response.value.update(result.value)
    elif result.value is not None:
        response.value = result.value
    return response


def _set_any(flag: Any, value: Any) -> None:
    if isinstance(value, bool):
        flag.bool_value = value
    elif isinstance(value, int | float):
        flag.double_value = float(value)  # v1's AnyFlag has no integer: numbers are doubles
    elif isinstance(value, str):
        flag.string_value = value
    elif isinstance(value, dict):
        flag.object_value.update(value)
