"""Runs the servicer's coroutines on the application's event loop for grpcio's thread-pool server.

The hot path (an answer-cache hit) is answered on the gRPC thread and never comes here. Everything
else (a cache miss, Get, Watch) needs the store, which lives on the event loop: the thread submits
the coroutine and waits for it, bounded by the call's deadline. The servicer aborts through a
context whose `abort` raises `RpcAbort`; the bridge turns that into the real call's status.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, NoReturn, Protocol, TypeVar

import grpc

from entitlements_sidecar import logs
from entitlements_sidecar.transport.grpc.deadlines import CALL_DEADLINE

Request = TypeVar("Request")
Response = TypeVar("Response")


class RpcAbort(Exception):  # control flow for the bridge, not one of our errors
    """Raised by `LoopContext.abort`: end the call with this status."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class AbortContext(Protocol):
    async def abort(self, code: grpc.StatusCode, details: str) -> NoReturn: ...


class LoopContext:
    """What a servicer coroutine sees as its call context while it runs on the loop."""

    async def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise RpcAbort(code, details)


_CONTEXT = LoopContext()


class LoopBridge:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind_running_loop(self) -> None:
        """Called on the loop before the server starts taking calls."""
        self._loop = asyncio.get_running_loop()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("LoopBridge used before bind_running_loop()")
        return self._loop

    def call(
        self,
        method: Callable[[Request, AbortContext], Awaitable[Response]],
        request: Request,
        context: grpc.ServicerContext,
    ) -> Response:
        remaining = _remaining(context)
        # The default loop's clock is time.monotonic(), so the deadline can be read here and used there.
        deadline = None if remaining is None else time.monotonic() + remaining
        coroutine = _run(method, request, _caller_request_id(context), deadline)
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout=remaining)
        except concurrent.futures.TimeoutError:
            future.cancel()
            _abort(context, grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
        except RpcAbort as abort:
            _abort(context, abort.code, abort.details)

    def stream(
        self,
        method: Callable[[Request, AbortContext], AsyncIterator[Response]],
        request: Request,
        context: grpc.ServicerContext,
    ) -> Iterator[Response]:
        """Pull a servicer's async stream item by item; a cancelled call cancels the pending step."""
        stream = method(request, _CONTEXT)
        current: list[concurrent.futures.Future[Response]] = []
        ended = False

        def on_done() -> None:
            nonlocal ended
            ended = True
            if current:
                current[-1].cancel()  # thread-safe: cancels the task on the loop

        context.add_callback(on_done)
        try:
            while not ended:
                future = asyncio.run_coroutine_threadsafe(_next(stream), self.loop)
                current.append(future)
                if ended:  # the call ended between the loop's test and the append: on_done missed it
                    future.cancel()
                try:
                    item = future.result()
                except (StopAsyncIteration, concurrent.futures.CancelledError):
                    return
                except RpcAbort as abort:
                    _abort(context, abort.code, abort.details)
                current.clear()
                yield item
        finally:
            asyncio.run_coroutine_threadsafe(_close(stream), self.loop)


async def _run(
    method: Callable[[Any, AbortContext], Awaitable[Response]],
    request: Any,
    caller_id: str | None,
    deadline: float | None,
) -> Response:
    logs.new_request_id(caller_id)  # this task's context: every log line of this call carries it
    CALL_DEADLINE.set(deadline)
    return await method(request, _CONTEXT)


def _caller_request_id(context: grpc.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and isinstance(value, str):
            return value
    return None


async def _next(stream: AsyncIterator[Response]) -> Response:
    return await stream.__anext__()


async def _close(stream: AsyncIterator[Any]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        # RuntimeError: still running its cancelled step, whose `finally` cleans up.
        with contextlib.suppress(RuntimeError):
            await aclose()


def _remaining(context: grpc.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None or remaining > 1e8 else max(0.0, remaining)


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    context.abort(code, details)
    raise AssertionError("grpc's abort returned")  # it raises; this line tells the type checker so
