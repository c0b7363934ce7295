"""Two thread pools behind the one executor grpcio's thread-pool server accepts.

A stream (Watch, flagd EventStream, health Watch, reflection) holds its thread for as long as it is
open, so it cannot share a small pool with unary calls; and a large pool makes unary calls dearer,
because under load Python's executor starts a thread per waiting call and they all contend for the
GIL (docs/adr/0004). grpcio submits every response-streaming call as
`submit(context.run, _stream_response_in_pool, ...)`; those go to the stream pool. The check is one
identity comparison, since it runs on every call. If a grpcio upgrade changed that shape, streams
would fall back to the unary pool; tests/integration/test_watch_limits.py would catch it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any, TypeVar

import grpc
from grpc import _server as grpc_server_internals

T = TypeVar("T")
_STREAMING = getattr(grpc_server_internals, "_stream_response_in_pool", None)


class RoutingExecutor(futures.ThreadPoolExecutor):
    """The unary pool itself, with a second pool for streams."""

    def __init__(self, unary_threads: int, stream_threads: int) -> None:
        super().__init__(unary_threads, thread_name_prefix="grpc-unary")
        self._streams = futures.ThreadPoolExecutor(max(1, stream_threads), thread_name_prefix="grpc-stream")

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> futures.Future[T]:
        if args and args[0] is _STREAMING:
            return self._streams.submit(fn, *args, **kwargs)
        return super().submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait, cancel_futures=cancel_futures)
        self._streams.shutdown(wait, cancel_futures=cancel_futures)


class StreamSlots:
    """The limit on open streams (Watch and OpenFeature event streams): each holds a thread."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free = threading.BoundedSemaphore(limit) if limit > 0 else None
        self._lock = threading.Lock()
        self.open = 0

    @contextlib.contextmanager
    def hold(self, context: grpc.ServicerContext) -> Iterator[None]:
        if self._free is None or not self._free.acquire(blocking=False):
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many open Watch or event streams (limit {self.limit}); retry later",
            )
        with self._lock:
            self.open += 1
        try:
            yield
        finally:
            with self._lock:
                self.open -= 1
            self._free.release()
