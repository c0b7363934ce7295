"""The one private grpcio name the sidecar relies on, checked when the server starts.

grpcio's thread-pool server submits every response-streaming call to its executor as
`submit(context.run, _stream_response_in_pool, ...)`; `routing.RoutingExecutor` recognises that
function to send streams to their own pool (docs/adr/0004). If an upgrade renamed it, streams would
silently share the lean unary pool and starve unary calls, so the server refuses to start instead.
"""

from __future__ import annotations

from typing import Any

from grpc import _server

from entitlements_sidecar.domain.errors import ConfigError

STREAM_RESPONSE_IN_POOL: Any = getattr(_server, "_stream_response_in_pool", None)


def require_stream_marker(marker: Any = STREAM_RESPONSE_IN_POOL) -> None:
    """ConfigError unless this grpcio has the function that marks a streaming call."""
    if not callable(marker):
        import grpc

        raise ConfigError(
            f"grpcio {grpc.__version__} has no grpc._server._stream_response_in_pool: streams could not be "
            "kept off the unary pool; install the grpcio version in constraints.txt"
        )
