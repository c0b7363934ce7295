"""LagoEventSink against the emulator over real HTTP: what Lago takes, what it already had, what it
refuses, and how a whole-batch refusal, a rate limit, an outage and a revoked key come back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from entitlements_sidecar.domain.usage import UsageEvent
from entitlements_sidecar.sources.lago.errors import LagoAuthError, LagoRateLimitedError, LagoUnavailableError
from entitlements_sidecar.sources.lago.events import LagoEventSink
from entitlements_sidecar.sources.lago.rate_limit import TokenBucket
from tests.integration.lago.conftest import seed
from tests.lago_emulator.server import LagoEmulator

pytestmark = pytest.mark.integration


def event(transaction_id: str, subscription: str = "sub_0", **properties: str) -> UsageEvent:
    return UsageEvent(transaction_id, subscription, "api_calls", 1_780_000_000.5, properties)


@pytest.fixture
async def sink(lago: LagoEmulator) -> AsyncIterator[LagoEventSink]:
    seed(lago)
    lago.state.usage.create_metric("api_calls", "count_agg")
    sink = LagoEventSink(lago.url, lago.api_key, TokenBucket(1000), timeout=5)
    yield sink
    await sink.close()


def ledger(lago: LagoEmulator) -> list[tuple[str, str]]:
    return [(e["external_subscription_id"], e["transaction_id"]) for e in lago.state.usage.events]


async def test_a_batch_is_taken_with_its_fields(sink: LagoEventSink, lago: LagoEmulator) -> None:
    result = await sink.send([event("t1", n="4"), event("t2", "sub_1")])
    assert list(result.delivered) == [0, 1] and not result.refused
    first = lago.state.usage.events[0]
    assert (first["code"], first["properties"], first["timestamp"].timestamp()) == (
        "api_calls",
        {"n": "4"},
        1_780_000_000.5,
    )
    assert ledger(lago) == [("sub_0", "t1"), ("sub_1", "t2")]


async def test_an_event_lago_already_has_is_delivered_and_the_rolled_back_rest_is_not(
    sink: LagoEventSink, lago: LagoEmulator
) -> None:
    await sink.send([event("t1")])
    # t1 again (a resend after a crash) and an event Lago refuses (no transaction id) roll back t2 and t3.
    result = await sink.send([event("t2"), event("t1"), event(""), event("t3")])
    assert list(result.delivered) == [1]
    assert list(result.refused) == [2] and "value_is_mandatory" in result.refused[2]
    assert ledger(lago) == [("sub_0", "t1")]  # nothing of the rolled-back batch counted
    again = await sink.send([event("t2"), event("t3")])  # what the forwarder sends next
    assert list(again.delivered) == [0, 1] and ledger(lago)[1:] == [("sub_0", "t2"), ("sub_0", "t3")]


async def test_too_many_events_halves_the_batch(sink: LagoEventSink, lago: LagoEmulator) -> None:
    result = await sink.send([event(f"t{i}") for i in range(101)])  # more than Lago's 100
    assert list(result.delivered) == [] and sink.max_batch == 50 and ledger(lago) == []


async def test_an_outage_a_rate_limit_and_a_revoked_key_take_nothing(sink: LagoEventSink, lago: LagoEmulator) -> None:
    lago.controls.fail_status = 503
    with pytest.raises(LagoUnavailableError):
        await sink.send([event("t1")])
    lago.controls.fail_status = None
    lago.controls.rate_limit = 1
    await sink.send([event("t1")])
    with pytest.raises(LagoRateLimitedError):
        await sink.send([event("t2")])
    lago.controls.rate_limit = None
    lago.controls.key_revoked = True
    with pytest.raises(LagoAuthError):
        await sink.send([event("t3")])
    assert ledger(lago) == [("sub_0", "t1")]


async def test_an_unreachable_lago_is_unavailable() -> None:
    from tests.support.processes import free_port

    sink = LagoEventSink(f"http://127.0.0.1:{free_port()}", "key", TokenBucket(1000), timeout=2)
    with pytest.raises(LagoUnavailableError):
        await sink.send([event("t1")])
    await sink.close()
