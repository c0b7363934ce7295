"""OFREP, OpenFeature's remote evaluation protocol over HTTP, on the HTTP port.

POST /ofrep/v1/evaluate/flags/{key} evaluates one flag; POST /ofrep/v1/evaluate/flags evaluates all
of the subject's flags (entitled features and their privileges) with an ETag computed from the
answer, so a client's If-None-Match gets 304 only when its own answer is unchanged. The flag
mapping is domain/flags.py.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from aiohttp import web

from entitlements_sidecar import tracing
from entitlements_sidecar.domain.errors import EntitlementsError, FlagError, FlagErrorCode, TooLargeError
from entitlements_sidecar.domain.flags import FlagResult, evaluate, evaluate_all, subject_from_context
from entitlements_sidecar.domain.ports import FeatureCatalog
from entitlements_sidecar.domain.service import EntitlementReader, EntitlementView
from entitlements_sidecar.transport.http.responses import json_body
from entitlements_sidecar.transport.openfeature.flag_events import FlagChangeFeed
from entitlements_sidecar.transport.wire import http_status

MAX_BODY_BYTES = 64 * 1024


class OfrepEndpoints:
    def __init__(self, service: EntitlementReader, feed: FlagChangeFeed, catalog: FeatureCatalog) -> None:
        self._service = service
        self._feed = feed
        self._catalog = catalog

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/ofrep/v1/evaluate/flags", self.evaluate_all)
        app.router.add_post("/ofrep/v1/evaluate/flags/{key:.+}", self.evaluate_one)

    async def evaluate_one(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        try:
            with tracing.span("OFREP evaluate", flag=key):
                view = await self._view(request)
                result = evaluate(view, key)
        except EntitlementsError as exc:
            return _failure(exc, key=key)
        return json_body(_success(result))

    async def evaluate_all(self, request: web.Request) -> web.Response:
        try:
            view = await self._view(request)
            catalog = await self._catalog.features()
        except EntitlementsError as exc:
            return _failure(exc)
        body = orjson.dumps({"flags": [_success(r) for r in evaluate_all(view, catalog).values()]})
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, content_type="application/json", headers={"ETag": etag})

    async def _view(self, request: web.Request) -> EntitlementView:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise TooLargeError(f"body larger than {MAX_BODY_BYTES} bytes")
        raw = bytearray()
        async for chunk in request.content.iter_chunked(16 * 1024):  # a body may arrive in many writes
            raw += chunk
            if len(raw) > MAX_BODY_BYTES:
                raise TooLargeError(f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            body = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError as exc:
            raise FlagError(FlagErrorCode.PARSE_ERROR, f"body is not JSON: {exc}") from exc
        context = body.get("context", {}) if isinstance(body, dict) else None
        if not isinstance(context, dict):
            raise FlagError(FlagErrorCode.INVALID_CONTEXT, "context must be a JSON object")
        view = await self._service.get(subject_from_context(context))
        self._feed.remember(view)
        return view


def _success(result: FlagResult) -> dict[str, Any]:
    # No `value` means "use the code default" (OFREP's optional value); providers still read `variant`.
    answer: dict[str, Any] = {"key": result.key, "reason": result.reason, "variant": result.variant}
    if result.value is not None:
        answer["value"] = result.value
    return answer


def _failure(exc: EntitlementsError, **key: str) -> web.Response:
    # OFREP's error body: the OpenFeature code for evaluation errors, GENERAL for everything else.
    status, message = http_status(exc)
    code = exc.code.value if isinstance(exc, FlagError) else "GENERAL"
    if status == 404 and not key:  # a bulk request names no flag that could be missing
        status = 400
    return json_body({**key, "errorCode": code, "errorDetails": message}, status)
