"""Builds the grpc.aio server: our service, grpc.health.v1 and server reflection."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from entitlements_sidecar.domain.errors import ConfigError
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from entitlements_sidecar.transport.servicer import EntitlementServicer

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["EntitlementService"].full_name
_HEALTH_NAMES = ("", SERVICE_NAME)


class GrpcServer:
    def __init__(self, servicer: EntitlementServicer, address: str) -> None:
        self.servicer = servicer
        self.health = HealthServicer()
        self.server = grpc.aio.server()
        pb_grpc.add_EntitlementServiceServicer_to_server(servicer, self.server)
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
