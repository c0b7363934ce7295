"""`POST /webhooks/lago`: verify, parse, deduplicate, queue, and answer within milliseconds.

The Lago fetch never happens here: the body is a snapshot and deliveries are unordered, so the event
only names what to re-read. Status codes: 200 queued or duplicate; 401 unsigned or wrongly signed;
400 malformed; 413 too large; 503 when the queue (Redis) or Lago's public key is unreachable, so
Lago retries the delivery.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web

from entitlements_sidecar import tracing
from entitlements_sidecar.domain.errors import EntitlementsError
from entitlements_sidecar.domain.events import EventQueue, SyncEvent, Target
from entitlements_sidecar.domain.ids import IdKind, id_problem
from entitlements_sidecar.logs import Throttled
from entitlements_sidecar.sources.lago.signatures import SignatureError, SignatureVerifier
from entitlements_sidecar.transport.metrics import Metrics

log = logging.getLogger(__name__)
_refusals = Throttled(log)

_TARGETS = {"subscription": Target.SUBSCRIPTION, "plan": Target.PLAN, "feature": Target.FEATURE}
_KEYS = {Target.SUBSCRIPTION: "external_id", Target.PLAN: "code", Target.FEATURE: "code"}
# The same rules as ids in gRPC requests: an id that fails them could not be re-read from Lago safely.
_KINDS = {Target.SUBSCRIPTION: IdKind.SUBSCRIPTION, Target.PLAN: IdKind.CODE, Target.FEATURE: IdKind.CODE}


def problem(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


class WebhookIntake:
    def __init__(
        self, verifier: SignatureVerifier, queue: EventQueue, max_body_bytes: int, metrics: Metrics | None = None
    ) -> None:
        self._verifier = verifier
        self._queue = queue
        self._max_body = max_body_bytes
        self._metrics = metrics or Metrics()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/webhooks/lago", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        with tracing.span("webhook"):
            webhook_type, outcome, response = await self._handle(request)
        self._metrics.webhooks.labels(webhook_type, outcome).inc()
        if response.status >= 400:
            # Why a delivery was refused (a wrong HMAC token shows here), never the signature itself;
            # throttled per outcome, so a flood of bad deliveries is a few lines.
            reason = orjson.loads(response.body)["error"] if isinstance(response.body, bytes) else outcome
            _refusals.log(
                logging.WARNING if outcome in ("bad_signature", "unavailable") else logging.INFO,
                f"webhook-{outcome}",
                "webhook refused",
                status=response.status,
                outcome=outcome,
                type=webhook_type,
                reason=reason,
                peer=request.remote,
            )
        return response

    async def _handle(self, request: web.Request) -> tuple[str, str, web.Response]:
        """(webhook type or "unknown", outcome, response)."""
        if request.content_length is not None and request.content_length > self._max_body:
            return "unknown", "too_large", problem(413, f"body larger than {self._max_body} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(64 * 1024):  # read() may return only part
            size += len(chunk)
            if size > self._max_body:
                return "unknown", "too_large", problem(413, f"body larger than {self._max_body} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        try:
            await self._verifier.verify(
                request.headers.get("X-Lago-Signature-Algorithm"), request.headers.get("X-Lago-Signature"), body
            )
        except SignatureError as exc:
            return "unknown", "bad_signature", problem(401, str(exc))
        except EntitlementsError as exc:
            return "unknown", "unavailable", problem(503, f"cannot verify now: {exc}")
        try:
            webhook_type, event = _parse(body)
        except ValueError as exc:
            return "unknown", "bad_request", problem(400, str(exc))
        unique_key = request.headers.get("X-Lago-Unique-Key", "").strip()
        if not unique_key or len(unique_key) > 255:
            return webhook_type, "bad_request", problem(400, "missing or invalid X-Lago-Unique-Key header")
        if event is None:  # a type that does not change entitlements
            return webhook_type, "ignored", web.json_response({"status": "ignored"})
        try:
            queued = await self._queue.publish(event, unique_key)
        except EntitlementsError as exc:
            return webhook_type, "unavailable", problem(503, f"queue unavailable: {exc}")
        outcome = "queued" if queued else "duplicate"
        log.info("webhook accepted", extra={"type": webhook_type, "key": event.key, "outcome": outcome})
        return webhook_type, outcome, web.json_response({"status": outcome})


def _parse(body: bytes) -> tuple[str, SyncEvent | None]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ValueError("body must be a JSON object")
    webhook_type, object_type = payload.get("webhook_type"), payload.get("object_type")
    if not isinstance(webhook_type, str) or not isinstance(object_type, str):
        raise ValueError("webhook_type and object_type must be strings")
    if not _affects_entitlements(webhook_type):
        return webhook_type, None
    target = _TARGETS.get(object_type)
    obj = payload.get(object_type)
    if target is None or not isinstance(obj, dict):
        raise ValueError(f"{webhook_type} must carry a {object_type!r} object")
    key = obj.get(_KEYS[target])
    if not isinstance(key, str):
        raise ValueError(f"{object_type}.{_KEYS[target]} must be a string")
    problem = id_problem(key, _KINDS[target])
    if problem is not None:
        raise ValueError(f"{object_type}.{_KEYS[target]} {problem}")
    return webhook_type, SyncEvent(target, key, webhook_type)


def _affects_entitlements(webhook_type: str) -> bool:
    # Other subscription.* types (trial_ended, usage_threshold_reached, ...) change nothing we keep.
    return webhook_type in {
        "subscription.started",
        "subscription.updated",
        "subscription.terminated",
        "subscription.canceled",
        "subscription.incomplete",
        "plan.updated",
        "plan.created",
        "feature.updated",
        "feature.deleted",
    }
