"""Builds the grpc.aio server: our service, grpc.health.v1 and server reflection."""

from __future__ import annotations

import logging
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from entitlements_sidecar.domain.errors import ConfigError
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.transport.answer_cache import AnswerCache
from entitlements_sidecar.transport.servicer import EntitlementServicer

log = logging.getLogger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["EntitlementService"].full_name
_HEALTH_NAMES = ("", SERVICE_NAME)


class GrpcServer:
    def __init__(self, servicer: EntitlementServicer, address: str, answers: AnswerCache | None = None) -> None:
        self.servicer = servicer
        self.health = HealthServicer()
        self.server = grpc.aio.server()
        handlers = _servicer_handlers(servicer)
        if answers is not None:
            handlers.update(answers.handlers())  # the hot RPCs, on raw bytes
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
        self.server.add_registered_method_handlers(SERVICE_NAME, handlers)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self.server,
        )
        try:
            self.port = self.server.add_insecure_port(address)
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen on {address}: {exc}") from exc
        self.address = address

    async def start(self) -> None:
        await self.set_serving(False)  # until the first load is done
        await self.server.start()

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in _HEALTH_NAMES:
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        await self.health.enter_graceful_shutdown()
        self.servicer.begin_shutdown()
        await self.server.stop(grace)
        log.info("calls served", extra=self.servicer.served)


def _servicer_handlers(servicer: EntitlementServicer) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    return {
        "CheckEntitlement": grpc.unary_unary_rpc_method_handler(
            servicer.CheckEntitlement,
            pb.CheckEntitlementRequest.FromString,
            pb.CheckEntitlementResponse.SerializeToString,
        ),
        "CheckEntitlements": grpc.unary_unary_rpc_method_handler(
            servicer.CheckEntitlements,
            pb.CheckEntitlementsRequest.FromString,
            pb.CheckEntitlementsResponse.SerializeToString,
        ),
        "GetEntitlements": grpc.unary_unary_rpc_method_handler(
            servicer.GetEntitlements, pb.GetEntitlementsRequest.FromString, pb.GetEntitlementsResponse.SerializeToString
        ),
        "WatchEntitlements": grpc.unary_stream_rpc_method_handler(
            servicer.WatchEntitlements,
            pb.WatchEntitlementsRequest.FromString,
            pb.WatchEntitlementsResponse.SerializeToString,
        ),
    }
