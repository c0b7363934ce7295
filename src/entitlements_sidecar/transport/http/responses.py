"""JSON bodies for every HTTP answer the sidecar writes itself."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


def json_body(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json", headers=headers)


def problem(status: int, message: str, **extra: Any) -> web.Response:
    return json_body({"error": message, **extra}, status)
