"""Bare echo servers for baselines: the same RPC shape as CheckEntitlement (two short strings in, a
bool and a string out) with no work behind it. `--stack` picks the serving stack; on SIGUSR1 and
SIGTERM the server prints how many calls it answered, which the benchmark checks against the load
generator."""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading

import grpc

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from entitlements_sidecar.transport.grpc.routing import RoutingExecutor


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
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, lambda: print(f"served {echo.served}", flush=True))
    await stopping.wait()
    await server.stop(1)
    print(f"served {echo.served}", flush=True)


class SyncEcho(pb_grpc.EntitlementServiceServicer):
    def __init__(self, fail_every: int = 0) -> None:
        self.served = 0
        self.calls = 0
        self._fail_every = fail_every  # > 0: every Nth call fails (how the benchmark's count check is tested)
        self._lock = threading.Lock()

    def CheckEntitlement(self, request, context):  # type: ignore[no-untyped-def]
        with self._lock:
            self.calls += 1
            failing = self._fail_every > 0 and self.calls % self._fail_every == 0
            if not failing:
                self.served += 1
        if failing:
            context.abort(grpc.StatusCode.INTERNAL, "broken on purpose")
        return pb.CheckEntitlementResponse(allowed=True, subscription_id=request.subscription_id)


def serve_sync(port: int, threads: int, fail_every: int = 0) -> None:
    """The stack the sidecar ships: grpcio's thread-pool server on our executor (docs/adr/0004)."""
    echo = SyncEcho(fail_every)
    server = grpc.server(RoutingExecutor(threads, 4))  # the executor the sidecar runs calls on
    pb_grpc.add_EntitlementServiceServicer_to_server(echo, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGUSR1, lambda *_: print(f"served {echo.served}", flush=True))
    stopping.wait()
    server.stop(1).wait()
    print(f"served {echo.served}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stack", choices=["aio", "sync"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=2)  # as the sidecar's default
    parser.add_argument("--fail-every", type=int, default=0, help="sync stack: fail every Nth call (self-test)")
    args = parser.parse_args()
    if args.stack == "sync":
        serve_sync(args.port, args.threads, args.fail_every)
    else:
        asyncio.run(serve_aio(args.port))


if __name__ == "__main__":
    main()
