"""The webhook intake with Lago's decoder, on the in-memory queue: what is queued, what is refused and how."""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson
import pytest

from entitlements_sidecar.domain.events import SyncEvent, Target
from entitlements_sidecar.metrics import Metrics
from entitlements_sidecar.sources.lago.signatures import SignatureVerifier
from entitlements_sidecar.sources.lago.webhooks import LagoWebhooks
from entitlements_sidecar.store.memory_queue import MemoryQueue
from entitlements_sidecar.transport.http.webhook import WebhookIntake
from tests.unit.transport.http.requests import request

KEY = "hmac-token"


def signed(payload: object, key: str = KEY, unique: str = "delivery-1") -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(payload)
    signature = base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()
    return body, {"X-Lago-Signature": signature, "X-Lago-Signature-Algorithm": "hmac", "X-Lago-Unique-Key": unique}


UPDATED = {
    "webhook_type": "subscription.updated",
    "object_type": "subscription",
    "subscription": {"external_id": "sub_a"},
}


@pytest.fixture
def queue() -> MemoryQueue:
    return MemoryQueue(wait_seconds=0.01)


def intake(queue: MemoryQueue, max_body: int = 10_000) -> WebhookIntake:
    decoder = LagoWebhooks(SignatureVerifier(KEY, None))
    return WebhookIntake("/webhooks/lago", decoder, queue, max_body, Metrics())


async def answer(intake: WebhookIntake, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    response = await intake.handle(request("POST", "/webhooks/lago", body, headers))
    assert isinstance(response.body, bytes)
    return response.status, orjson.loads(response.body)


async def test_a_signed_delivery_is_queued_once(queue: MemoryQueue) -> None:
    body, headers = signed(UPDATED)
    assert await answer(intake(queue), body, headers) == (200, {"status": "queued"})
    assert await answer(intake(queue), body, headers) == (200, {"status": "duplicate"})
    [queued] = await queue.read(10)
    assert queued.event == SyncEvent(Target.SUBSCRIPTION, "sub_a", "subscription.updated")


async def test_a_type_that_changes_nothing_is_ignored(queue: MemoryQueue) -> None:
    body, headers = signed({"webhook_type": "invoice.created", "object_type": "invoice", "invoice": {}})
    assert await answer(intake(queue), body, headers) == (200, {"status": "ignored"})
    assert await queue.depth() == 0


@pytest.mark.parametrize(
    ("payload", "key", "unique", "status", "names"),
    [
        (UPDATED, "another-token", "d", 401, "signature does not match"),
        ({"webhook_type": 1, "object_type": "subscription"}, KEY, "d", 400, "webhook_type"),
        ({**UPDATED, "subscription": {"external_id": "a/b"}}, KEY, "d", 400, "subscription.external_id: contains '/'"),
        ({**UPDATED, "subscription": {}}, KEY, "d", 400, "subscription.external_id: must be a string"),
        (UPDATED, KEY, "", 400, "X-Lago-Unique-Key"),
    ],
)
async def test_a_refused_delivery_names_what_was_wrong_and_queues_nothing(
    queue: MemoryQueue, payload: object, key: str, unique: str, status: int, names: str
) -> None:
    body, headers = signed(payload, key, unique)
    got, json = await answer(intake(queue), body, headers)
    assert got == status and names in str(json["error"])
    assert await queue.depth() == 0


async def test_an_unsigned_or_oversized_body_is_refused(queue: MemoryQueue) -> None:
    body, headers = signed(UPDATED)
    status, json = await answer(intake(queue), body, {"X-Lago-Unique-Key": "d"})
    assert status == 401 and "missing X-Lago-Signature" in str(json["error"])
    status, json = await answer(intake(queue, max_body=10), body, headers)
    assert status == 413 and "larger than 10 bytes" in str(json["error"])


async def test_a_queue_that_cannot_take_it_answers_503_so_lago_retries(queue: MemoryQueue) -> None:
    from entitlements_sidecar.domain.errors import StoreUnavailableError

    class Down(MemoryQueue):
        async def publish(self, event: SyncEvent, unique_key: str) -> bool:
            raise StoreUnavailableError("redis error: ConnectionError")

    body, headers = signed(UPDATED)
    status, json = await answer(intake(Down()), body, headers)
    assert status == 503 and "redis error" in str(json["error"])
