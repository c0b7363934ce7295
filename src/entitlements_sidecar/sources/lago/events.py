"""Usage events into Lago: `POST /api/v1/events/batch` (docs/lago-usage.md, "Ingesting usage events").

Its own HTTP client and token bucket: events have their own rate limit at Lago Cloud (500 req/s against
50 for the rest), and forwarding must never slow the syncer's reads. One request per call and no retries
here: the forwarder keeps what was not taken and sends it again.

A 422 names the bad events by index, and on Lago's Postgres store one bad event rolls back the whole
batch. So: an event whose only error is `transaction_id: value_already_exist` is ours coming back (a
resend after a crash) and counts as delivered; an event with any other error is refused for good; every
other event of the batch was rolled back and is sent again. `too_many_events` (a self-hosted Lago with a
lower batch limit) halves the batch size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from entitlements_sidecar.domain.usage import UsageEvent
from entitlements_sidecar.domain.usage_outbox import SendResult
from entitlements_sidecar.sources.lago.client import reset_seconds, response_body
from entitlements_sidecar.sources.lago.errors import (
    LagoRateLimitedError,
    LagoUnavailableError,
    error_from_response,
)
from entitlements_sidecar.sources.lago.http import LagoHttp
from entitlements_sidecar.sources.lago.rate_limit import TokenBucket

LAGO_BATCH_LIMIT = 100  # LAGO_EVENTS_BATCH_MAX_LENGTH's default
_DUPLICATE = {"transaction_id": ["value_already_exist"]}


class LagoEventSink:
    def __init__(
        self,
        api_url: str,
        api_key: str,
        limiter: TokenBucket,
        timeout: float = 10.0,
        proxy: str = "",
    ) -> None:
        self._http = LagoHttp(api_url, api_key, timeout, proxy)  # its own connections, as its own lane
        self._limiter = limiter
        self._max_batch = LAGO_BATCH_LIMIT
        self.requests = 0

    @property
    def max_batch(self) -> int:
        return self._max_batch

    async def close(self) -> None:
        await self._http.close()

    async def send(self, events: Sequence[UsageEvent]) -> SendResult:
        await self._limiter.acquire()
        self.requests += 1
        body = orjson.dumps({"events": [_lago_event(event) for event in events]})
        response = await self._http.post("events/batch", body)  # LagoUnavailableError when unreachable
        if response.status == 200:
            return SendResult(delivered=range(len(events)))
        answer = response_body(response)
        if response.status == 422 and isinstance(answer, dict) and answer.get("code") == "validation_errors":
            return self._rolled_back(answer.get("error_details"), len(events))
        failure = error_from_response(response.status, answer, "events/batch")
        if isinstance(failure, LagoRateLimitedError):
            self._limiter.pause(reset_seconds(response))
        raise failure

    def _rolled_back(self, details: Any, count: int) -> SendResult:
        if not isinstance(details, dict):
            raise LagoUnavailableError("lago answered events/batch 422 without error details")
        if "events" in details:  # the batch as a whole: too many, or none
            if "too_many_events" in str(details["events"]) and self._max_batch > 1:
                self._max_batch = max(1, min(self._max_batch, count) // 2)
                return SendResult(delivered=())
            raise LagoUnavailableError(f"lago refused the batch as a whole: {details['events']}")
        delivered: list[int] = []
        refused: dict[int, str] = {}
        for key, problems in details.items():
            if not str(key).isdigit() or int(key) >= count:
                raise LagoUnavailableError(f"lago answered events/batch 422 naming no event of it: {key!r}")
            if problems == _DUPLICATE:
                delivered.append(int(key))
            else:
                refused[int(key)] = orjson.dumps(problems).decode()[:500]
        return SendResult(delivered, refused)


def _lago_event(event: UsageEvent) -> dict[str, Any]:
    return {
        "transaction_id": event.transaction_id,
        "external_subscription_id": event.subscription_id,
        "code": event.metric_code,
        "timestamp": event.timestamp,
        "properties": dict(event.properties),
    }
