"""Bare echo servers for baselines: the same RPC shape as CheckEntitlement (two short strings in, a
bool and a string out) with no work behind it. `--stack` picks the serving stack; on SIGTERM the
server prints how many calls it answered, which the benchmark checks against the load generator."""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading

import grpc

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from entitlements_sidecar.transport.routing_executor import RoutingExecutor


class Echo(pb_grpc.EntitlementServiceServicer):
    def __init__(self) -> None:
        self.served = 0

    async def CheckEntitlement(self, request, context):  # type: ignore[no-untyped-def]
        self.served += 1
        return pb.CheckEntitlementResponse(allowed=True, subscription_id=request.subscription_id)


async def serve_aio(port: int) -> None:
    echo = Echo()
    server = grpc.aio.server()
    pb_grpc.add_EntitlementServiceServicer_to_server(echo, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await stopping.wait()
    await server.stop(1)
    print(f"served {echo.served}", flush=True)


class SyncEcho(pb_grpc.EntitlementServiceServicer):
    def __init__(self) -> None:
        self.served = 0
        self._lock = threading.Lock()

    def CheckEntitlement(self, request, context):  # type: ignore[no-untyped-def]
        with self._lock:
            self.served += 1
        return pb.CheckEntitlementResponse(allowed=True, subscription_id=request.subscription_id)


def serve_sync(port: int, threads: int) -> None:
    """The stack the sidecar ships: grpcio's thread-pool server on our executor (docs/adr/0004)."""
    echo = SyncEcho()
    server = grpc.server(RoutingExecutor(threads, 4))  # the executor the sidecar runs calls on
    pb_grpc.add_EntitlementServiceServicer_to_server(echo, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    stopping.wait()
    server.stop(1).wait()
    print(f"served {echo.served}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stack", choices=["aio", "sync"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=2)  # as the sidecar's default
    args = parser.parse_args()
    if args.stack == "sync":
        serve_sync(args.port, args.threads)
    else:
        asyncio.run(serve_aio(args.port))


if __name__ == "__main__":
    main()
