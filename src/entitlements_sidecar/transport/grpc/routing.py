"""The executor grpcio's thread-pool server runs every call on: a lean pool for unary calls, and a
standard pool for streams.

A stream (Watch, flagd EventStream, health Watch, reflection) holds its thread for as long as it is
open, so it cannot share a small pool with unary calls; and a large pool makes unary calls dearer,
because under load Python's executor starts a thread per waiting call and they all contend for the
GIL (docs/adr/0004). grpcio submits every response-streaming call as
`submit(context.run, _stream_response_in_pool, ...)`; those go to the stream pool. The server refuses to
start if that function is gone (`grpcio_compat.py`); tests/integration/test_watch_limits.py checks the
routing itself.

Unary calls run on a fixed set of threads fed by one queue, and `submit` returns the least a grpcio
server uses of a Future (`add_done_callback`): the `concurrent.futures` machinery per call is a
measurable share of a cached check's CPU (docs/adr/0004 has the before/after from `make bench`).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any, TypeVar

import grpc

from entitlements_sidecar.transport.grpc.grpcio_compat import STREAM_RESPONSE_IN_POOL

log = logging.getLogger(__name__)
T = TypeVar("T")
Callback = Callable[[Any], object]


class _Completion:
    """What grpcio's server needs of the Future `submit` returns: a callback when the call is done."""

    __slots__ = ("_callbacks", "_finished", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callback] = []
        self._finished = False

    def add_done_callback(self, callback: Callback) -> None:
        with self._lock:
            if not self._finished:
                self._callbacks.append(callback)
                return
        callback(self)

    def finish(self) -> None:
        with self._lock:
            self._finished = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)


class RoutingExecutor(futures.ThreadPoolExecutor):
    """grpc.server() takes a ThreadPoolExecutor; the base class's own pool is never used."""

    def __init__(self, unary_threads: int, stream_threads: int) -> None:
        super().__init__(max_workers=1)
        self._work: queue.SimpleQueue[tuple[_Completion, Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._workers = [
            threading.Thread(target=self._run, name=f"grpc-unary-{n}", daemon=True) for n in range(unary_threads)
        ]
        for worker in self._workers:
            worker.start()
        self._streams = futures.ThreadPoolExecutor(max(1, stream_threads), thread_name_prefix="grpc-stream")

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> futures.Future[T]:
        if args and args[0] is STREAM_RESPONSE_IN_POOL:
            return self._streams.submit(fn, *args, **kwargs)
        completion = _Completion()
        self._work.put((completion, fn if not kwargs else lambda *a: fn(*a, **kwargs), args))
        return completion  # type: ignore[return-value]  # grpcio only calls add_done_callback on it

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            completion, fn, args = item
            try:
                fn(*args)
            except BaseException:
                log.exception("a gRPC call's task failed")  # grpcio handles the call's own errors
            completion.finish()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        for _ in self._workers:
            self._work.put(None)
        if wait:
            for worker in self._workers:
                worker.join()
        self._streams.shutdown(wait, cancel_futures=cancel_futures)
        super().shutdown(wait, cancel_futures=cancel_futures)


class StreamSlots:
    """The limit on open streams (Watch and OpenFeature event streams): each holds a thread. Also a limit per
    client connection, so one client (a frozen process, a leak) cannot take every slot; over a unix socket
    grpc does not tell connections apart, so there only the total limit applies."""

    def __init__(self, limit: int, per_connection: int | None = None) -> None:
        self.limit = limit
        self.per_connection = per_connection or limit
        self._free = threading.BoundedSemaphore(limit) if limit > 0 else None
        self._lock = threading.Lock()
        self._by_connection: dict[str, int] = {}
        self.open = 0

    @contextlib.contextmanager
    def hold(self, context: grpc.ServicerContext) -> Iterator[None]:
        connection = _connection(context.peer())
        with self._lock:
            held = self._by_connection.get(connection, 0) if connection else 0
        if held >= self.per_connection:
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many open Watch or event streams on this connection (limit {self.per_connection}); retry later",
            )
        if self._free is None or not self._free.acquire(blocking=False):
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many open Watch or event streams (limit {self.limit}); retry later",
            )
        with self._lock:
            self.open += 1
            if connection:
                self._by_connection[connection] = self._by_connection.get(connection, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self.open -= 1
                if connection:
                    left = self._by_connection.pop(connection) - 1
                    if left:
                        self._by_connection[connection] = left
            self._free.release()


def _connection(peer: str | None) -> str:
    """The client connection a call came on: its address and port for TCP; '' when grpc cannot tell."""
    if peer and peer.startswith(("ipv4:", "ipv6:")) and peer.rsplit(":", 1)[-1].isdigit():
        return peer
    return ""
