"""The HTTP port (aiohttp): health, metrics, OFREP (readers) and Lago's webhook endpoint (syncers).

Every connection goes through transport/http/guard.py first (request heads bounded in size and time,
bodies in time). Only a syncer's port accepts a long `X-Lago-Signature` line: Lago's JWT signature
carries the whole webhook body. Client mistakes are logged without tracebacks, at a bounded rate, and
no response names the server's software or versions.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import aiohttp.web_response
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from entitlements_sidecar import logs
from entitlements_sidecar.domain.errors import ConfigError
from entitlements_sidecar.transport.http.guard import GuardedProtocol, HttpLimits
from entitlements_sidecar.transport.http.responses import problem

SERVER_NAME = "entitlements-sidecar"
# aiohttp writes `Server: Python/3.x aiohttp/3.x` on every response it builds, its own error pages
# included, from this module global; a version banner only helps whoever probes the port.
aiohttp.web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]

log = logging.getLogger(__name__)


class Routes(Protocol):
    def add_routes(self, app: web.Application) -> None: ...


class _ClientErrorLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger: a request it cannot parse is the client's mistake, one throttled INFO
    line without a traceback; anything else stays an ERROR with its traceback."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {})
        self._throttled = logs.Throttled(logger)

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        error = exc_info if isinstance(exc_info, BaseException) else None
        if isinstance(error, HttpProcessingError):
            self._throttled.log(logging.INFO, "http-malformed", "malformed HTTP request refused", reason=str(error))
            return
        self.logger.error(msg, *args, exc_info=exc_info, **kwargs)


class HttpServer:
    def __init__(
        self,
        address: str,
        routes: Sequence[Routes],
        ssl_context: ssl.SSLContext | None,
        limits: HttpLimits,
        on_reject: Callable[[str], None],
        shutdown_timeout: float = 5.0,
    ) -> None:
        self._ssl_context = ssl_context
        self._limits = limits
        self._on_reject = on_reject
        # Each endpoint enforces its own body limit.
        app = web.Application(client_max_size=0, middlewares=[_request_id])
        for part in routes:
            part.add_routes(app)
        self._runner = web.AppRunner(
            app,
            max_line_size=limits.longest_line,  # the guard is stricter; these are aiohttp's own backstops
            max_field_size=limits.longest_line,
            max_headers=limits.max_headers,
            keepalive_timeout=limits.idle_timeout,
            logger=_ClientErrorLog(logging.getLogger("aiohttp.server")),
            access_log=None,
            shutdown_timeout=shutdown_timeout,
        )
        host, _, port = address.rpartition(":")
        self._host = host.strip("[]")
        self._port = int(port)
        self.port = self._port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        await self._runner.setup()
        handlers = self._runner.server
        assert handlers is not None
        limits, on_reject = self._limits, self._on_reject
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: GuardedProtocol(handlers(), limits, on_reject),
                self._host,
                self._port,
                ssl=self._ssl_context,
                reuse_address=True,
            )
        except OSError as exc:
            await self._runner.cleanup()
            raise ConfigError(f"cannot listen on {self._host}:{self._port}: {exc.strerror}") from exc
        if self._server.sockets:  # the bound port, when 0 was asked for
            self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()  # no new connections; the runner closes the open ones
        await self._runner.cleanup()
        if self._server is not None:
            await self._server.wait_closed()


@web.middleware
async def _request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = logs.new_request_id(request.headers.get("X-Request-Id"))
    try:
        response = await handler(request)
    except ConnectionResetError:
        # The client went away while sending its body: nothing to answer, and nothing it asked was done.
        # One line at debug: a client that drops many connections must not fill the log with tracebacks.
        log.debug("client closed the connection mid-request", extra={"path": request.path})
        return problem(400, "the connection closed before the request's body arrived")
    response.headers["X-Request-Id"] = rid
    return response
