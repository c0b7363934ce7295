"""Lago's REST endpoints over aiohttp, with Lago's shapes, errors, pagination and rate limiting."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from tests.lago_emulator.models import ApiError, Json, iso
from tests.lago_emulator.state import LagoState
from tests.lago_emulator.webhooks import Signer

T = TypeVar("T")

_ERRORS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    503: "Service Unavailable",
}
STATUSES = {"pending", "active", "terminated", "canceled", "incomplete"}


class Controls:
    """Knobs a test turns: a rate limit, forced failures, and a log of requests."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rate_limit: int | None = None  # requests per second, like Lago Cloud's per-organization limit
        self.fail_status: int | None = None
        self.requests: list[tuple[float, str, str]] = []  # (time, method, path)
        self.rate_limited = 0  # requests answered 429
        # Faults of a broken Lago (or a proxy in front of it): a listing that ignores its id filters, and
        # subscription reads answered with another subscription's row (asked id -> served id).
        self.ignore_id_filters = False
        self.swap_rows: dict[str, str] = {}
        self.key_revoked = False  # the organization's API key was revoked: every request is 401
        self._window: deque[float] = deque()

    def api_requests(self, method: str = "GET") -> list[tuple[float, str, str]]:
        with self.lock:
            return [r for r in self.requests if r[1] == method and r[2].startswith("/api/v1/")]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(body), status=status, content_type="application/json", headers=headers)


def error(status: int, code: str | None = None, details: Any = None) -> web.Response:
    body: dict[str, Any] = {"status": status, "error": _ERRORS.get(status, "Error")}
    if code:
        body["code"] = code
    if details:
        body["error_details"] = details
    return json_response(body, status)


def paginate(
    items: list[T], request: web.Request, key: str, render: Callable[[T], Any] = lambda item: item
) -> web.Response:
    """One page of `items`, each rendered as JSON only when it is on the page: rendering every row for each
    page made a listing of N rows cost N^2/100 renders (57 ms a page at 2,000 subscriptions), and the
    emulator's one event loop held every other request behind it."""
    per_page = int(request.query.get("per_page", 100))
    page = int(request.query.get("page", 1))
    total = len(items)
    pages = math.ceil(total / per_page) if total else 0
    chunk = [render(item) for item in items[(page - 1) * per_page : page * per_page]]
    meta = {
        "current_page": page if total else 0,
        "next_page": page + 1 if page < pages else None,
        "prev_page": page - 1 if page > 1 and total else None,
        "total_pages": pages,
        "total_count": total,
    }
    return json_response({key: chunk, "meta": meta})


def build_app(state: LagoState, signer: Signer, api_key: str, controls: Controls) -> web.Application:
    @web.middleware
    async def gate(request: web.Request, handler: Any) -> web.StreamResponse:
        with controls.lock:
            stamp = time.monotonic()
            controls.requests.append((stamp, request.method, request.path))
            if controls.fail_status:
                return error(controls.fail_status)
            if controls.rate_limit:
                while controls._window and controls._window[0] <= stamp - 1:
                    controls._window.popleft()
                if len(controls._window) >= controls.rate_limit:
                    reset = max(0.0, 1 - (stamp - controls._window[0]))
                    controls.rate_limited += 1
                    response = error(429)
                    response.headers.update(
                        {
                            "X-RateLimit-Limit": str(controls.rate_limit),
                            "X-RateLimit-Remaining": "0",
                            "X-RateLimit-Reset": f"{reset:.3f}",
                        }
                    )
                    return response
                controls._window.append(stamp)
        auth = request.headers.get("Authorization", "").split()
        if len(auth) != 2 or auth[1] != api_key or controls.key_revoked:
            return error(401)
        try:
            with state.lock:
                answer: web.StreamResponse = await handler(request)
                return answer
        except ApiError as exc:
            return error(exc.status, exc.code, exc.details)

    routes = web.RouteTableDef()

    @routes.get("/api/v1/features")
    async def features(request: web.Request) -> web.Response:
        live = [f for f in state.features.values() if not f.deleted]
        live.sort(key=lambda f: (-f.created_at.timestamp(), -f.seq))
        return paginate(live, request, "features", state.feature_json)

    @routes.get("/api/v1/plans/{code}/entitlements")
    async def plan_entitlements(request: web.Request) -> web.Response:
        return json_response({"entitlements": state.plan_entitlements(request.match_info["code"])})

    @routes.get("/api/v1/subscriptions")
    async def subscriptions(request: web.Request) -> web.Response:
        statuses = request.query.getall("status[]", [])
        if any(s not in STATUSES for s in statuses):  # Lago drops an invalid status filter entirely
            statuses = sorted(STATUSES)
        filters = {
            k: request.query[k] for k in ("external_id", "plan_code", "external_customer_id") if k in request.query
        }
        if controls.ignore_id_filters:
            filters.pop("external_id", None)
            filters.pop("external_customer_id", None)
        rows = state.rows_matching(statuses or ["active"], **filters)
        return paginate(rows, request, "subscriptions", lambda r: state.subscription_json(r, False))

    @routes.get("/api/v1/subscriptions/{external_id}")
    async def subscription(request: web.Request) -> web.Response:
        asked = request.match_info["external_id"]
        row = state.find_row(controls.swap_rows.get(asked, asked), request.query.get("status", "active"))
        return json_response({"subscription": state.subscription_json(row, True)})

    @routes.get("/api/v1/subscriptions/{external_id}/entitlements")
    async def subscription_entitlements(request: web.Request) -> web.Response:
        status = request.query.get("subscription_status", request.query.get("status", "active"))
        row = state.find_row(request.match_info["external_id"], status)
        return json_response({"entitlements": state.resolve(row)})

    @routes.get("/api/v1/webhooks/json_public_key")
    async def public_key(request: web.Request) -> web.Response:
        return json_response({"webhook": {"public_key": signer.public_key_base64()}})

    @routes.post("/api/v1/events")
    async def event(request: web.Request) -> web.Response:
        body = await _json_body(request)
        [accepted] = state.usage.ingest([body.get("event")], batch=False)
        return json_response({"event": _event_json(accepted)})

    @routes.post("/api/v1/events/batch")
    async def events_batch(request: web.Request) -> web.Response:
        body = await _json_body(request)
        return json_response({"events": [_event_json(e) for e in state.usage.ingest(body.get("events"), batch=True)]})

    @routes.get("/api/v1/customers/{external_customer_id}/current_usage")
    async def current_usage(request: web.Request) -> web.Response:
        customer = request.match_info["external_customer_id"]
        subscription_id = request.query.get("external_subscription_id")
        if not subscription_id:
            raise ApiError(422, "validation_errors", {"external_subscription_id": ["value_is_mandatory"]})
        if not any(r.external_customer_id == customer for r in state.rows):
            raise ApiError(404, "customer_not_found")
        rows = [r for r in state.rows if r.external_customer_id == customer and r.external_id == subscription_id]
        active = next((r for r in rows if r.status == "active"), None)
        if active is None:
            raise ApiError(405, "no_active_subscription")
        return json_response(state.usage.current_usage(active, request.query.get("billable_metric_code")))

    app = web.Application(middlewares=[gate])
    app.add_routes(routes)
    return app


async def _json_body(request: web.Request) -> Json:
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json")
    return body


def _event_json(event: Json) -> Json:
    return {
        "lago_id": f"evt-{event['transaction_id']}",
        "transaction_id": event["transaction_id"],
        "code": event["code"],
        "external_subscription_id": event["external_subscription_id"],
        "timestamp": iso(event["timestamp"], millis=True),
        "properties": event["properties"],
    }
