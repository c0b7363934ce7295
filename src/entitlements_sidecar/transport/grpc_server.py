"""The gRPC server: grpcio's thread-pool server with our service, grpc.health.v1 and reflection.

Why threads and not grpc.aio: a thread-pool server answers a unary call for about half the CPU of
grpc.aio (docs/adr/0004), and the hot path (an answer-cache hit) needs nothing from the event loop.
Everything else runs on the loop through `LoopBridge`. A Watch stream holds one thread while open,
so streams run on a pool of their own (`RoutingExecutor`), sized by the Watch stream limit, and
Watch calls over the limit are refused rather than queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from entitlements_sidecar.domain.errors import ConfigError
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.transport.answer_cache import AnswerCache
from entitlements_sidecar.transport.flagd_service import FlagdService
from entitlements_sidecar.transport.loop_bridge import LoopBridge
from entitlements_sidecar.transport.routing_executor import RoutingExecutor, StreamSlots
from entitlements_sidecar.transport.servicer import EntitlementServicer

log = logging.getLogger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["EntitlementService"].full_name
_HEALTH_NAMES = ("", SERVICE_NAME)


class GrpcServer:
    def __init__(
        self,
        servicer: EntitlementServicer,
        address: str,
        bridge: LoopBridge,
        answers: AnswerCache | None = None,
        threads: int = 2,
        slots: StreamSlots | None = None,
        flagd: FlagdService | None = None,
        max_request_bytes: int = 1024 * 1024,
        credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        self.servicer = servicer
        self.health = health.HealthServicer()
        self._bridge = bridge
        self._slots = slots or StreamSlots(100)
        self._flagd = flagd
        # Streams (ours, flagd's, health and reflection) hold a thread each: a few beyond our limit.
        self.server = grpc.server(
            RoutingExecutor(threads, self._slots.limit + 4),
            options=[("grpc.max_receive_message_length", max_request_bytes)],
        )
        handlers = self._servicer_handlers()
        if answers is not None:
            handlers.update(answers.handlers())  # the hot RPCs, on raw bytes
        services = {SERVICE_NAME: handlers, **(flagd.handlers() if flagd else {})}
        for name, methods in services.items():
            self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, methods),))
            self.server.add_registered_method_handlers(name, methods)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (*services, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self.server,
        )
        try:
            if credentials is None:
                self.port = self.server.add_insecure_port(address)
            else:
                self.port = self.server.add_secure_port(address, credentials)
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen on {address}: {exc}") from exc
        self.address = address

    async def start(self) -> None:
        self._bridge.bind_running_loop()
        await self.set_serving(False)  # until the first load is done
        self.server.start()

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in _HEALTH_NAMES:
            self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        self.health.enter_graceful_shutdown()
        self.servicer.begin_shutdown()  # open Watch streams end with UNAVAILABLE
        if self._flagd is not None:
            self._flagd.close()  # and so do OpenFeature event streams
        stopped = self.server.stop(grace)
        # Wait off the loop: calls still in flight need the loop to finish.
        await asyncio.to_thread(stopped.wait, grace + 5)
        log.info("calls served", extra=self.servicer.calls.served_snapshot())

    def _servicer_handlers(self) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        servicer, bridge = self.servicer, self._bridge

        def unary(method: Any) -> Any:
            return lambda request, context: bridge.call(method, request, context)

        return {
            "CheckEntitlement": grpc.unary_unary_rpc_method_handler(
                unary(servicer.CheckEntitlement),
                pb.CheckEntitlementRequest.FromString,
                pb.CheckEntitlementResponse.SerializeToString,
            ),
            "CheckEntitlements": grpc.unary_unary_rpc_method_handler(
                unary(servicer.CheckEntitlements),
                pb.CheckEntitlementsRequest.FromString,
                pb.CheckEntitlementsResponse.SerializeToString,
            ),
            "GetEntitlements": grpc.unary_unary_rpc_method_handler(
                unary(servicer.GetEntitlements),
                pb.GetEntitlementsRequest.FromString,
                pb.GetEntitlementsResponse.SerializeToString,
            ),
            "WatchEntitlements": grpc.unary_stream_rpc_method_handler(
                self._watch,
                pb.WatchEntitlementsRequest.FromString,
                pb.WatchEntitlementsResponse.SerializeToString,
            ),
        }

    def _watch(
        self, request: pb.WatchEntitlementsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.WatchEntitlementsResponse]:
        with self._slots.hold(context):
            yield from self._bridge.stream(self.servicer.WatchEntitlements, request, context)
