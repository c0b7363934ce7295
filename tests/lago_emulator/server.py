"""Runs the emulator on 127.0.0.1 in a background thread, and delivers its webhooks on request."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterable

import httpx
from aiohttp import web

from tests.lago_emulator.api import Controls, build_app
from tests.lago_emulator.models import Webhook
from tests.lago_emulator.state import LagoState
from tests.lago_emulator.webhooks import Signer, deliver
from tests.support.processes import free_port


class LagoEmulator:
    def __init__(self, api_key: str = "lago-test-api-key") -> None:
        self.api_key = api_key
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state = LagoState()
        self.controls = Controls()
        self.signer = Signer(hmac_key=str(uuid.uuid4()), issuer=self.url)
        self.webhook_url: str | None = None
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="lago-emulator", daemon=True)
        # One client per delivering thread: httpcore's pool, shared by many threads, can close a socket another
        # thread is about to read (seen as EBADF in CI), and Lago's own job workers do not share connections either.
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._clients_lock = threading.Lock()

    def start(self) -> LagoEmulator:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()  # else the garbage collector warns about it, during whichever test runs then
        with self._clients_lock:
            for client in self._clients:
                client.close()
            self._clients.clear()

    async def _serve(self) -> None:
        self._runner = web.AppRunner(build_app(self.state, self.signer, self.api_key, self.controls))
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    # -- webhooks -------------------------------------------------------------------------

    def take_outbox(self) -> list[Webhook]:
        with self.state.lock:
            taken, self.state.outbox[:] = list(self.state.outbox), []
        return taken

    def deliver(self, webhooks: Iterable[Webhook], algorithm: str = "hmac") -> list[int]:
        assert self.webhook_url, "set webhook_url first"
        return [deliver(self.webhook_url, w, self.signer, algorithm, self._client()) for w in webhooks]

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = httpx.Client(timeout=10)
            with self._clients_lock:
                self._clients.append(client)
        return client

    def flush(self, algorithm: str = "hmac") -> list[int]:
        """Deliver everything queued, in order, like Lago's jobs usually do."""
        return self.deliver(self.take_outbox(), algorithm)
