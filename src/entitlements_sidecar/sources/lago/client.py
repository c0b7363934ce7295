"""An async client for the Lago REST endpoints the sidecar reads (docs/lago-contract.md §0-§6).

Every request waits for the shared token bucket, retries 5xx/timeouts/connection errors with capped
exponential backoff, honours 429 by pausing every caller until `X-RateLimit-Reset`, and turns Lago's
error bodies into typed errors.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast
from urllib.parse import quote

import orjson

from entitlements_sidecar import tracing
from entitlements_sidecar.sources.lago.asked import Asked
from entitlements_sidecar.sources.lago.errors import (
    LagoContractError,
    LagoError,
    LagoNotFoundError,
    LagoRateLimitedError,
    LagoRequestError,
    LagoUnavailableError,
    error_from_response,
)
from entitlements_sidecar.sources.lago.http import LagoHttp, Reply
from entitlements_sidecar.sources.lago.rate_limit import Limiter

log = logging.getLogger(__name__)

Json = dict[str, Any]
ACTIVE_AND_PENDING = ("active", "pending")
EVERY_STATUS = ("active", "pending", "incomplete", "terminated", "canceled")
_MAX_RESET_WAIT = 60.0  # never trust a reset header to park us for longer


class LagoClient:
    def __init__(
        self,
        api_url: str,
        api_key: str,
        limiter: Limiter,
        timeout: float = 10.0,
        max_retries: int = 5,
        backoff_base: float = 0.2,
        backoff_cap: float = 5.0,
        usage_limiter: Limiter | None = None,
        proxy: str = "",
    ) -> None:
        self._http = LagoHttp(api_url, api_key, timeout, proxy)
        self._limiter = limiter
        self._usage_limiter = usage_limiter or limiter  # current usage has a lane (and a Lago limit) of its own
        self._max_retries = max_retries
        self._backoff = (backoff_base, backoff_cap)
        self.requests = 0  # for tests and metrics: requests actually sent
        self.rejected_rows = 0  # rows that did not match what was asked (metrics)

    async def close(self) -> None:
        await self._http.close()

    # -- endpoints ------------------------------------------------------------------------

    async def get_subscription(self, external_id: str, status: str | None = None) -> Json | None:
        """`GET /subscriptions/{external_id}`: one row with its resolved `entitlements`, or None (404).
        Raises LagoContractError when Lago answers another row than the one asked for."""
        params = {"status": status} if status else None
        path = f"subscriptions/{_segment(external_id)}"
        body = await self._get_or_none(path, params)
        if body is None:
            return None
        row = body.get("subscription")
        problem = Asked(external_id, (status or "active",)).mismatch(row)
        if problem is not None:
            self.rejected_rows += 1
            log.error("lago answered another subscription than asked; ignored", extra={"path": path, "got": problem})
            raise LagoContractError(f"lago answered {path} with {problem}")
        return cast(Json, row)  # a dict: mismatch() checked it

    async def get_subscription_entitlements(self, external_id: str, status: str | None = None) -> list[Json] | None:
        params = {"subscription_status": status} if status else None
        body = await self._get_or_none(f"subscriptions/{_segment(external_id)}/entitlements", params)
        return body["entitlements"] if body else None

    async def list_subscriptions(
        self,
        statuses: Sequence[str] = ACTIVE_AND_PENDING,
        external_id: str | None = None,
        external_customer_id: str | None = None,
        per_page: int = 100,
    ) -> AsyncIterator[Json]:
        """`GET /subscriptions`, every page. No entitlements in this listing. Only rows that match every
        filter are yielded: the others are counted, logged once per listing and dropped."""
        params: list[tuple[str, str | int]] = [("status[]", s) for s in statuses]
        if external_id:
            params.append(("external_id", external_id))
        if external_customer_id:
            params.append(("external_customer_id", external_customer_id))
        asked = Asked(external_id or None, tuple(statuses), external_customer_id or None)
        rejected: list[str] = []
        async for item in self._pages("subscriptions", "subscriptions", params, per_page):
            problem = asked.mismatch(item)
            if problem is None:
                yield item
            else:
                rejected.append(problem)
        if rejected:
            self.rejected_rows += len(rejected)
            log.error(
                "lago listed subscriptions that do not match the filter; ignored",
                extra={"filter": _filters(asked), "rejected": len(rejected), "first": rejected[0]},
            )

    async def subscription_page(
        self, statuses: Sequence[str], page: int, per_page: int = 100
    ) -> tuple[list[Json], int | None, int | None]:
        """One page of `GET /subscriptions` (a full sync walks them with a checkpoint): its matching rows,
        the next page's number (None after the last) and Lago's total count, when it says."""
        params: list[tuple[str, str | int]] = [("status[]", s) for s in statuses]
        body = await self._get("subscriptions", [*params, ("page", page), ("per_page", per_page)])
        asked = Asked(None, tuple(statuses), None)
        rows = [item for item in body.get("subscriptions", []) if asked.mismatch(item) is None]
        if len(rows) < len(body.get("subscriptions", [])):
            self.rejected_rows += len(body.get("subscriptions", [])) - len(rows)
            log.error("lago listed subscriptions that do not match the filter; ignored", extra={"page": page})
        meta = body.get("meta") or {}
        following, total = meta.get("next_page"), meta.get("total_count")
        return rows, int(following) if following else None, int(total) if isinstance(total, int) else None

    async def get_plan_entitlements(self, plan_code: str) -> list[Json] | None:
        body = await self._get_or_none(f"plans/{_segment(plan_code)}/entitlements")
        return body["entitlements"] if body else None

    async def list_features(self, per_page: int = 100) -> AsyncIterator[Json]:
        async for item in self._pages("features", "features", [], per_page):
            yield item

    async def get_current_usage(
        self, external_customer_id: str, external_subscription_id: str, metric: str
    ) -> Json | None:
        """`GET /customers/{id}/current_usage` for one metric, without taxes (docs/lago-usage.md, "Current
        usage"); None when Lago has no active subscription or customer for it. One attempt: it is asked for
        on a caller's time, and a failure only means counting starts locally."""
        params = {
            "external_subscription_id": external_subscription_id,
            "billable_metric_code": metric,
            "apply_taxes": "false",
        }
        path = f"customers/{_segment(external_customer_id)}/current_usage"
        try:
            return await self._get(path, params, limiter=self._usage_limiter, retries=0)
        except LagoNotFoundError:
            return None
        except LagoRequestError as exc:
            if exc.status == 405:  # no_active_subscription
                return None
            raise

    async def get_webhook_public_key(self) -> bytes:
        """The instance's RSA public key (PEM) for JWT-signed webhooks."""
        body = await self._get("webhooks/json_public_key")
        return base64.b64decode(body["webhook"]["public_key"])

    # -- plumbing -------------------------------------------------------------------------

    async def _pages(
        self, path: str, key: str, params: list[tuple[str, str | int]], per_page: int
    ) -> AsyncIterator[Json]:
        page = 1
        while True:
            body = await self._get(path, [*params, ("page", page), ("per_page", per_page)])
            for item in body.get(key, []):
                yield item
            next_page = (body.get("meta") or {}).get("next_page")
            if not next_page:
                return
            page = int(next_page)

    async def _get_or_none(self, path: str, params: Any = None) -> Json | None:
        try:
            return await self._get(path, params)
        except LagoNotFoundError:
            return None

    async def _get(
        self, path: str, params: Any = None, limiter: Limiter | None = None, retries: int | None = None
    ) -> Json:
        limiter = limiter or self._limiter
        max_retries = self._max_retries if retries is None else retries
        attempt = 0
        while True:
            await limiter.acquire()
            self.requests += 1
            try:
                with tracing.span("lago GET", path=path.split("?")[0], attempt=attempt):
                    response = await self._http.get(path, params)
            except LagoUnavailableError as exc:  # timeouts, refused and reset connections
                failure: LagoError = exc
            else:
                if response.status == 200:
                    return _json(response, path)
                failure = error_from_response(response.status, response_body(response), path)
                if isinstance(failure, LagoRateLimitedError):
                    limiter.pause(reset_seconds(response))
                elif not isinstance(failure, LagoUnavailableError):
                    raise failure  # 4xx other than 429 will not get better by retrying
            attempt += 1
            if attempt > max_retries:
                raise failure
            if not isinstance(failure, LagoRateLimitedError):
                base, cap = self._backoff
                delay = min(cap, base * 2 ** (attempt - 1))
                log.warning("lago request failed, retrying", extra={"path": path, "attempt": attempt, "delay": delay})
                await asyncio.sleep(delay)


def _segment(value: str) -> str:
    # Codes may contain dots and external ids anything but '/': quote everything but the unreserved set,
    # and the dots of a segment that is only dots, which URL resolution would otherwise walk up with.
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if not quoted.strip(".") else quoted


def _filters(asked: Asked) -> str:
    parts = [f"external_id={asked.external_id}"] if asked.external_id else []
    parts += [f"status={','.join(asked.statuses)}"] if asked.statuses else []
    parts += [f"external_customer_id={asked.external_customer_id}"] if asked.external_customer_id else []
    return " ".join(parts)


def _json(response: Reply, path: str) -> Json:
    body = response_body(response)
    if not isinstance(body, dict):
        raise LagoUnavailableError(f"lago answered {path} with a body that is not a JSON object")
    return body


def response_body(response: Reply) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def reset_seconds(response: Reply) -> float:
    try:
        return min(_MAX_RESET_WAIT, max(0.0, float(response.headers.get("X-RateLimit-Reset", "1"))))
    except ValueError:
        return 1.0
