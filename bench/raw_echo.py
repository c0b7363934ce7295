"""The barest CheckEntitlement server a stack allows: takes the request bytes, returns fixed answer
bytes, counts calls. Used by bench/stack_survey.py to find each serving stack's floor. Runs under
any grpcio version (or, as `app`, under an ASGI server with HTTP/2 trailers such as pyvoy)."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from concurrent import futures
from typing import Any

ANSWER = b"\x08\x01"  # CheckEntitlementResponse(allowed=True)
SERVICE = "entitlements.v1.EntitlementService"
served = [0]
lock = threading.Lock()


def serve_grpcio(stack: str, port: int, threads: int) -> None:
    import grpc

    if stack == "sync":

        def answer(raw: bytes, context: Any) -> bytes:
            with lock:
                served[0] += 1
            return ANSWER

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads))
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    SERVICE, {"CheckEntitlement": grpc.unary_unary_rpc_method_handler(answer)}
                ),
            )
        )
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        print("ready", flush=True)
        stopping = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())
        signal.signal(signal.SIGUSR1, lambda *_: print(f"served {served[0]}", flush=True))
        stopping.wait()
        server.stop(0)
        print(f"served {served[0]}", flush=True)
        return

    async def run() -> None:
        async def answer(raw: bytes, context: Any) -> bytes:
            served[0] += 1
            return ANSWER

        server = grpc.aio.server()
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    SERVICE, {"CheckEntitlement": grpc.unary_unary_rpc_method_handler(answer)}
                ),
            )
        )
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print("ready", flush=True)
        stopping = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, lambda: print(f"served {served[0]}", flush=True))
        await stopping.wait()
        await server.stop(0)
        print(f"served {served[0]}", flush=True)

    asyncio.run(run())


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """ASGI: one unary gRPC call per HTTP/2 request, answered with a frame and a grpc-status trailer."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                print(f"served {served[0]}", flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    served[0] += 1
    headers = [(b"content-type", b"application/grpc")]
    await send({"type": "http.response.start", "status": 200, "headers": headers, "trailers": True})
    body = b"\x00" + len(ANSWER).to_bytes(4, "big") + ANSWER
    await send({"type": "http.response.body", "body": body, "more_body": False})
    await send({"type": "http.response.trailers", "headers": [(b"grpc-status", b"0")], "more_trailers": False})


if __name__ == "__main__":
    serve_grpcio(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 4)
