"""The gRPC server: grpcio's thread-pool server with our service, grpc.health.v1 and reflection.

Why threads and not grpc.aio: a thread-pool server answers a unary call for about half the CPU of
grpc.aio (docs/adr/0004), and the hot path (an answer-cache hit) needs nothing from the event loop.
Everything else runs on the loop through `LoopBridge`. A Watch stream holds one thread while open,
so streams run on a pool of their own (`RoutingExecutor`), sized by the Watch stream limit, and
Watch calls over the limit are refused rather than queued, as are streams past a per-connection limit,
so one client cannot hold every slot; the server pings every connection (HTTP/2 keepalive) and drops a
client that stops answering, which ends its streams and frees their slots (a frozen process, a host gone).

The listening socket is not shared unless asked for (`reuse_port`): grpcio would otherwise set
SO_REUSEPORT, and a second sidecar started on the same address would silently take half the calls.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from entitlements_sidecar.domain.errors import ConfigError
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.transport.grpc.answer_cache import AnswerCache
from entitlements_sidecar.transport.grpc.decoding import HandlerCollector, all_checked
from entitlements_sidecar.transport.grpc.grpcio_compat import require_stream_marker
from entitlements_sidecar.transport.grpc.loop_bridge import LoopBridge
from entitlements_sidecar.transport.grpc.routing import RoutingExecutor, StreamSlots
from entitlements_sidecar.transport.grpc.servicer import EntitlementServicer

log = logging.getLogger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["EntitlementService"].full_name
_HEALTH_NAMES = ("", SERVICE_NAME)


@dataclass(frozen=True, slots=True)
class Keepalive:
    ping_every_seconds: float = 10.0
    answer_within_seconds: float = 5.0
    # Clients may ping us this often (ours ping every 20 s); faster is a misbehaving client.
    client_ping_at_most_every_seconds: float = 5.0

    def options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.keepalive_time_ms", int(self.ping_every_seconds * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.answer_within_seconds * 1000)),
            # grpcio 1.78 closes a connection whose ping goes unanswered only after this (default 60 s).
            ("grpc.http2.ping_timeout_ms", int(self.answer_within_seconds * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            # A quiet Watch stream sends no data, and grpc sends no second ping without data for 5 minutes
            # by default: ping it every interval all the same.
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.http2.min_time_between_pings_ms", int(self.ping_every_seconds * 1000)),
            # What clients may do: ping every 5 s at most often; a client pinging faster is sent away.
            ("grpc.http2.min_ping_interval_without_data_ms", int(self.client_ping_at_most_every_seconds * 1000)),
            ("grpc.http2.max_ping_strikes", 2),
        ]


class GrpcServices(Protocol):
    """Another protocol served on the same port (flagd's evaluation services)."""

    def handlers(self) -> dict[str, dict[str, grpc.RpcMethodHandler[Any, Any]]]:
        """Method handlers by full service name."""
        ...

    def close(self) -> None:
        """End open streams: the server is stopping."""
        ...


class GrpcServer:
    def __init__(
        self,
        servicer: EntitlementServicer,
        address: str,
        bridge: LoopBridge,
        answers: AnswerCache | None,
        threads: int,
        slots: StreamSlots,
        more: Sequence[GrpcServices],
        max_request_bytes: int,
        credentials: grpc.ServerCredentials | None,
        *,
        reuse_port: bool,
        keepalive: Keepalive,
    ) -> None:
        self.servicer = servicer
        self.health = health.HealthServicer()
        self._bridge = bridge
        self._slots = slots
        self._more = more
        # Streams (ours, flagd's, health and reflection) hold a thread each: a few beyond our limit.
        options = [
            ("grpc.max_receive_message_length", max_request_bytes),
            ("grpc.so_reuseport", 1 if reuse_port else 0),
            *keepalive.options(),
        ]
        self.server = grpc.server(RoutingExecutor(threads, self._slots.limit + 4), options=options)
        handlers = self._servicer_handlers()
        if answers is not None:
            handlers.update(answers.handlers())  # the hot RPCs, on raw bytes
        services = {SERVICE_NAME: handlers}
        for extra in more:
            services.update(extra.handlers())
        health_handlers = HandlerCollector()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, health_handlers)
        for name, methods in {**services, **health_handlers.services}.items():
            checked = all_checked(methods)  # a request that is not the message: INVALID_ARGUMENT
            self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, checked),))
            self.server.add_registered_method_handlers(name, checked)
        reflection.enable_server_reflection(
            (*services, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self.server,
        )
        if address.startswith("unix:") and _unix_socket_answers(address.removeprefix("unix:")):
            raise ConfigError(_in_use(address, reuse_port))  # grpc would unlink the socket and take over its path
        try:
            if credentials is None:
                self.port = self.server.add_insecure_port(address)
            else:
                self.port = self.server.add_secure_port(address, credentials)
        except RuntimeError as exc:
            if _tcp_port_in_use(address):
                raise ConfigError(_in_use(address, reuse_port)) from None
            raise ConfigError(f"cannot listen on {address}: {exc}") from exc
        self.address = address

    async def start(self) -> None:
        require_stream_marker()
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
        for extra in self._more:
            extra.close()  # and so do OpenFeature event streams
        stopped = self.server.stop(grace)
        # Wait off the loop: calls still in flight need the loop to finish.
        await asyncio.to_thread(stopped.wait, grace + 5)
        self.log_calls()

    def log_calls(self) -> None:
        """Calls answered OK so far, per method (at shutdown, and on SIGUSR1 for a live count)."""
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


def _in_use(address: str, reuse_port: bool) -> str:
    message = f"cannot listen on {address}: the address is already in use (another process serves there)"
    if address.startswith("unix:") or reuse_port:
        return message
    return message + "; to share a TCP port between sidecar processes on purpose, set ENTITLEMENTS_GRPC_REUSE_PORT=true"


def _unix_socket_answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path.removeprefix("//"))
        except OSError:
            return False  # no socket there, or a stale file nobody listens on (grpc replaces it)
    return True


def _tcp_port_in_use(address: str) -> bool:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, int(port)))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
        except ValueError:
            return False
    return False
