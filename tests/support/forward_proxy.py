"""A forward HTTP proxy on 127.0.0.1, in a background thread, for tests of clients that go through one
(an egress proxy in front of Lago). It takes requests in absolute form (`GET http://host:port/path`),
sends each on to its origin with the proxy's own headers dropped, relays the answer, and records what it
carried. Only http:// origins: a CONNECT tunnel is not what these tests exercise."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from aiohttp import ClientSession, web

from tests.support.processes import free_port

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer",
               "transfer-encoding", "upgrade", "host", "content-length"}  # fmt: skip


@dataclass(frozen=True)
class Carried:
    method: str
    url: str  # absolute, as the client asked the proxy
    status: int


class ForwardProxy:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.carried: list[Carried] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="forward-proxy", daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None

    def start(self) -> ForwardProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if self._loop.is_closed():
            return  # stopped already
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    async def _serve(self) -> None:
        self._session = ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        target = request.url
        if not request.raw_path.startswith("http://"):  # origin form: a client talking to us as a server
            return web.json_response({"error": "a proxy takes absolute URLs"}, status=400)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        body = await request.read()
        async with self._session.request(request.method, request.raw_path, headers=headers, data=body) as answer:
            payload = await answer.read()
            self.carried.append(Carried(request.method, str(target), answer.status))
            relayed = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
            return web.Response(status=answer.status, headers=relayed, body=payload)
