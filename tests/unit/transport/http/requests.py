"""aiohttp requests built in memory, so HTTP handlers are unit-tested without a socket."""

from __future__ import annotations

import asyncio
from unittest import mock

from aiohttp import streams, web
from aiohttp.test_utils import make_mocked_request


def request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> web.Request:
    payload = streams.StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    payload.feed_data(body)
    payload.feed_eof()
    all_headers = {"Content-Length": str(len(body)), **(headers or {})}
    return make_mocked_request(method, path, headers=all_headers, payload=payload)
