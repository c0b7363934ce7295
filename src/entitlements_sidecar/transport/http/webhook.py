"""`POST` of a source's webhooks: read the body within its limit, let the source's decoder verify and
parse it, queue the event durably (deduplicated by the delivery key), and answer within milliseconds.

Statuses come from transport/wire.py: 200 queued, duplicate or ignored; 401 unsigned or wrongly signed;
400 malformed; 413 too large; 503 when the queue (Redis) or the signature key is unreachable, so the
sender retries the delivery. Nothing is fetched from the source here.
"""

from __future__ import annotations

import logging

from aiohttp import web

from entitlements_sidecar import tracing
from entitlements_sidecar.domain.errors import EntitlementsError, TooLargeError
from entitlements_sidecar.domain.events import EventQueue, WebhookDecoder
from entitlements_sidecar.logs import Throttled
from entitlements_sidecar.metrics import Metrics
from entitlements_sidecar.transport.http.responses import problem
from entitlements_sidecar.transport.wire import http_status

log = logging.getLogger(__name__)
_refusals = Throttled(log)
_OUTCOMES = {400: "bad_request", 401: "bad_signature", 413: "too_large"}  # any other refusal: unavailable


class WebhookIntake:
    def __init__(
        self, path: str, decoder: WebhookDecoder, queue: EventQueue, max_body_bytes: int, metrics: Metrics
    ) -> None:
        self._path = path
        self._decoder = decoder
        self._queue = queue
        self._max_body = max_body_bytes
        self._metrics = metrics

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(self._path, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        kind = "unknown"
        with tracing.span("webhook"):
            try:
                body = await self._body(request)
                delivery = await self._decoder.decode(request.headers, body)
                kind = delivery.kind
                if delivery.event is None:  # a type that does not change entitlements
                    outcome = "ignored"
                else:
                    outcome = (
                        "queued" if await self._queue.publish(delivery.event, delivery.unique_key) else "duplicate"
                    )
                    log.info("webhook accepted", extra={"type": kind, "key": delivery.event.key, "outcome": outcome})
            except EntitlementsError as exc:
                status, message = http_status(exc)
                outcome = _OUTCOMES.get(status, "unavailable")
                self._metrics.webhooks.labels(kind, outcome).inc()
                self._log_refusal(request, kind, outcome, status, message)
                return problem(status, message)
        self._metrics.webhooks.labels(kind, outcome).inc()
        return web.json_response({"status": outcome})

    async def _body(self, request: web.Request) -> bytes:
        too_large = TooLargeError(f"body larger than {self._max_body} bytes")
        if request.content_length is not None and request.content_length > self._max_body:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(64 * 1024):  # read() may return only part
            size += len(chunk)
            if size > self._max_body:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    def _log_refusal(self, request: web.Request, kind: str, outcome: str, status: int, reason: str) -> None:
        # Why a delivery was refused (a wrong HMAC token shows here), never the signature itself;
        # throttled per outcome, so a flood of bad deliveries is a few lines.
        _refusals.log(
            logging.WARNING if outcome in ("bad_signature", "unavailable") else logging.INFO,
            f"webhook-{outcome}",
            "webhook refused",
            status=status,
            outcome=outcome,
            type=kind,
            reason=reason,
            peer=request.remote,
        )
