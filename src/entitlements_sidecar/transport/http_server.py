"""The HTTP port (aiohttp): health, metrics, OFREP (readers) and Lago's webhook endpoint (syncers).

Lago's JWT signature carries the whole payload in a header, so header limits are raised well past
aiohttp's 8 KiB default.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler

from entitlements_sidecar import logs
from entitlements_sidecar.domain.errors import ConfigError

MAX_HEADER_BYTES = 256 * 1024


class Routes(Protocol):
    def add_routes(self, app: web.Application) -> None: ...


class HttpServer:
    def __init__(
        self,
        address: str,
        routes: Sequence[Routes],
        shutdown_timeout: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._ssl_context = ssl_context
        # Each endpoint enforces its own body limit.
        app = web.Application(client_max_size=0, middlewares=[_request_id])
        for part in routes:
            part.add_routes(app)
        self._runner = web.AppRunner(
            app,
            max_line_size=MAX_HEADER_BYTES,
            max_field_size=MAX_HEADER_BYTES,
            access_log=None,
            shutdown_timeout=shutdown_timeout,
        )
        host, _, port = address.rpartition(":")
        self._host = host.strip("[]")
        self._port = int(port)
        self.port = self._port

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, ssl_context=self._ssl_context)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(f"cannot listen on {self._host}:{self._port}: {exc.strerror}") from exc
        server = site._server  # the bound port, when 0 was asked for
        if server is not None and server.sockets:  # type: ignore[attr-defined]
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        await self._runner.cleanup()


@web.middleware
async def _request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = logs.new_request_id(request.headers.get("X-Request-Id"))
    response = await handler(request)
    response.headers["X-Request-Id"] = rid
    return response
