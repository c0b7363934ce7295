"""The HTTP connection to Lago's API (under /api/v1/), authenticated with the API key: aiohttp's client.

aiohttp rather than httpx: a GET costs several times less CPU (`python -m bench.lago_http_cost`, figures
in docs/adr/0012), and a reconciliation sends one per subscription from the event loop that applies
webhooks. Transport failures (refused or reset connections, timeouts, truncated bodies) become
LagoUnavailableError, which the callers retry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from entitlements_sidecar.sources.lago.errors import LagoUnavailableError

Params = Mapping[str, str] | Sequence[tuple[str, str | int]] | None


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    content: bytes
    headers: Mapping[str, str]


class LagoHttp:
    def __init__(self, api_url: str, api_key: str, timeout: float, proxy: str = "") -> None:
        self._proxy = proxy or None  # config.py resolves it, from the proxy variables too
        self._root = api_url.rstrip("/") + "/api/v1/"
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None  # made in the loop that uses it, on first use

    async def get(self, path: str, params: Params = None) -> Reply:
        return await self._request("GET", path, params=params)

    async def post(self, path: str, content: bytes) -> Reply:
        return await self._request("POST", path, data=content)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(self, method: str, path: str, **options: Any) -> Reply:
        if self._session is None or self._session.closed:
            # Not trust_env: it reads the proxy variables and ~/.netrc again for every request, costing more
            # CPU than the request itself.
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        # Paths arrive quoted (client._segment): encoded=True keeps yarl from normalising them again.
        url = URL(self._root + path, encoded=True)
        try:
            async with self._session.request(method, url, proxy=self._proxy, **options) as response:
                return Reply(response.status, await response.read(), response.headers)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise LagoUnavailableError(f"lago unreachable on {path}: {type(exc).__name__}") from exc
