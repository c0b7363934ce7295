"""Bare echo servers for baselines: the same RPC shape as CheckEntitlement (two short strings in, a
bool and a string out) with no work behind it. `--stack` picks the serving stack; on SIGTERM the
server prints how many calls it answered, which the benchmark checks against the load generator."""

from __future__ import annotations

import argparse
import asyncio
import signal

import grpc

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stack", choices=["aio"], required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve_aio(args.port))


if __name__ == "__main__":
    main()
